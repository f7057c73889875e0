//! Every mechanism delivers every byte intact and in order, at several sizes, in every pattern
//! it supports, between two processes (`shmsock_lab::check_integrity` forks a child per size
//! and pattern; the forks are serialised inside the library).

fn check(name: &str) {
    if let Err(err) = shmsock_lab::check_integrity(name) {
        panic!("{name}: {err}");
    }
}

#[test]
fn floor_delivers_its_sequence_numbers() {
    check("floor");
}

#[test]
fn raw_ring_delivers_every_byte() {
    check("raw-ring");
}

#[test]
fn shmsock_busy_delivers_every_byte() {
    check("shmsock-busy");
}

#[test]
fn shmsock_delivers_every_byte() {
    check("shmsock");
}

#[test]
fn pipe_delivers_every_byte() {
    check("pipe");
}

#[test]
fn uds_stream_delivers_every_byte() {
    check("uds-stream");
}

#[test]
fn tcp_delivers_every_byte() {
    check("tcp");
}

#[test]
fn unknown_mechanism_is_an_error_naming_the_known_ones() {
    let err = shmsock_lab::check_integrity("carrier-pigeon").expect_err("unknown");
    let text = err.to_string();
    assert!(
        text.contains("carrier-pigeon") && text.contains("uds-stream"),
        "{text}"
    );
}
