//! The flowchart and the menu as questions on a terminal: only the questions the path needs, in
//! its order.

use std::io::{self, BufRead, Write};

use super::{decide, parse_bytes, parse_duration_ns, parse_rate, Needs, LARGE_TRANSFER_BYTES};

/// Wrong answers tolerated per question before it counts as unanswered.
const TRIES: usize = 3;

/// Asks the questions of the flowchart and of the menu on `output`, reads the answers from
/// `input`.
///
/// An empty answer means "no" / "not given". End of input ends the interview with what was
/// answered so far.
pub fn interview(input: &mut dyn BufRead, output: &mut dyn Write) -> io::Result<Needs> {
    let mut needs = Needs::default();
    writeln!(
        output,
        "Which IPC to use? The Comparison's flowchart and the IPC cheat sheet's menu, one \
         question at a time (Enter = no / not given)."
    )?;
    needs.remote = ask_yes_no(
        input,
        output,
        "Will the processes run on different machines, now or later? [y/N] ",
    )?;
    if needs.remote {
        return Ok(needs);
    }
    needs.notify_only = ask_yes_no(
        input,
        output,
        "Only a wake-up crosses, no data (a notification)? [y/N] ",
    )?;
    if needs.notify_only {
        ask_budget(input, output, &mut needs)?;
        if needs.latency_critical() {
            return ask_untrusted(input, output, needs);
        }
        needs.event_loop = ask_yes_no(
            input,
            output,
            "Does the woken side wait in an event loop (epoll, poll, tokio)? [y/N] ",
        )?;
        return Ok(needs);
    }
    needs.size_bytes = ask(
        input,
        output,
        "How many bytes per transfer (e.g. 64, 4KiB, 1MiB)? ",
        parse_bytes,
    )?;
    if needs.size_bytes.is_some_and(|s| s > LARGE_TRANSFER_BYTES) {
        ask_rate(input, output, &mut needs)?;
        return ask_untrusted(input, output, needs);
    }
    ask_budget(input, output, &mut needs)?;
    if needs.latency_critical() {
        return ask_untrusted(input, output, needs);
    }
    needs.kernel_queue = ask_yes_no(
        input,
        output,
        "Must messages wait in the kernel while the reader is absent (slow, not started, \
         restarting)? [y/N] ",
    )?;
    if needs.kernel_queue {
        ask_rate(input, output, &mut needs)?;
        return Ok(needs);
    }
    needs.byte_stream = ask_yes_no(
        input,
        output,
        "Is the data a byte stream rather than messages? [y/N] ",
    )?;
    if needs.byte_stream {
        needs.parent_child = ask_yes_no(
            input,
            output,
            "Is the peer a child process you fork? [y/N] ",
        )?;
        ask_rate(input, output, &mut needs)?;
    }
    Ok(needs)
}

/// The Comparison's latency question.
fn ask_budget(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    needs: &mut Needs,
) -> io::Result<()> {
    needs.latency_budget_ns = ask(
        input,
        output,
        "Latency budget per message (e.g. 500ns, 2us, 1ms; Enter = not critical)? ",
        parse_duration_ns,
    )?;
    Ok(())
}

/// The Comparison's rate question.
fn ask_rate(input: &mut dyn BufRead, output: &mut dyn Write, needs: &mut Needs) -> io::Result<()> {
    needs.rate_per_s = ask(
        input,
        output,
        "How many transfers per second (e.g. 500, 30k)? ",
        parse_rate,
    )?;
    Ok(())
}

/// The untrusted question, asked when the answer so far shares memory with the peer.
fn ask_untrusted(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    mut needs: Needs,
) -> io::Result<Needs> {
    let (leaf, _) = decide(&needs);
    if leaf.shares_memory() {
        needs.untrusted = ask_yes_no(
            input,
            output,
            "Is the peer untrusted (another user, a sandbox, code you do not control)? [y/N] ",
        )?;
    }
    Ok(needs)
}

fn ask_yes_no(input: &mut dyn BufRead, output: &mut dyn Write, question: &str) -> io::Result<bool> {
    let answer = ask(input, output, question, |text| {
        match text.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" => Ok(true),
            "n" | "no" => Ok(false),
            _ => Err("answer y or n".to_string()),
        }
    })?;
    Ok(answer.unwrap_or(false))
}

/// Asks until `parse` accepts the answer (or [`TRIES`] times); `None` for an empty answer or
/// the end of the input.
fn ask<T>(
    input: &mut dyn BufRead,
    output: &mut dyn Write,
    question: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> io::Result<Option<T>> {
    for _ in 0..TRIES {
        write!(output, "{question}")?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(output)?;
            return Ok(None);
        }
        if line.trim().is_empty() {
            return Ok(None);
        }
        match parse(line.trim()) {
            Ok(value) => return Ok(Some(value)),
            Err(why) => writeln!(output, "  {why}")?,
        }
    }
    Ok(None)
}
