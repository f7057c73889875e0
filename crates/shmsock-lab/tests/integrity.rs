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
fn grpc_uds_delivers_every_byte() {
    check("grpc-uds");
}

#[test]
fn grpc_tcp_delivers_every_byte() {
    check("grpc-tcp");
}

#[test]
fn shm_cold_delivers_every_byte() {
    check("shm-cold");
}

#[test]
fn mmap_file_delivers_every_byte() {
    check("mmap-file");
}

#[test]
fn shm_open_delivers_every_byte() {
    check("shm-open");
}

#[test]
fn mmap_file_durable_delivers_every_byte() {
    for name in [
        "mmap-file-durable/1",
        "mmap-file-durable/64",
        "mmap-file-durable/4096",
    ] {
        check(name);
    }
}

#[test]
fn shmsock_blocking_delivers_every_byte() {
    check("shmsock-blocking");
}

#[test]
fn futex_delivers_every_byte() {
    check("futex");
}

#[test]
fn eventfd_delivers_every_byte() {
    check("eventfd");
}

#[test]
fn signal_delivers_every_byte() {
    check("signal");
}

#[test]
fn signalfd_delivers_its_words() {
    check("signalfd");
}

#[test]
fn posix_sem_delivers_every_byte() {
    check("posix-sem");
}

#[test]
fn fifo_delivers_every_byte() {
    check("fifo");
}

#[test]
fn uds_dgram_delivers_every_byte() {
    check("uds-dgram");
}

#[test]
fn uds_seqpacket_delivers_every_byte() {
    check("uds-seqpacket");
}

#[test]
fn udp_delivers_every_byte() {
    check("udp");
}

#[test]
fn posix_mq_delivers_every_byte() {
    check("posix-mq");
}

#[test]
fn sysv_mq_delivers_every_byte() {
    check("sysv-mq");
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

#[test]
fn spinlock_ring_delivers_every_byte() {
    check("spinlock-ring");
}

#[test]
fn mutex_ring_delivers_every_byte() {
    check("mutex-ring");
}

#[test]
fn mutex_ring_polling_delivers_every_byte() {
    check("mutex-ring-polling");
}

#[test]
fn sem_ring_delivers_every_byte() {
    check("sem-ring");
}

#[test]
fn cas_ring_delivers_every_byte() {
    check("cas-ring");
}
