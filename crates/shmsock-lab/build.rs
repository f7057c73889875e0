//! Generates the gRPC service of the lab's `grpc-uds` and `grpc-tcp` rows
//! (`src/mechanisms/grpc.rs`) with tonic-build's manual builder: the service is described
//! here in Rust and its messages are hand-written prost structs, so building the lab needs no
//! `.proto` file and no `protoc`.
//!
//! The service, as a `.proto` file would say it:
//!
//! ```text
//! package shmsock.lab;
//! service Lab {
//!   rpc Echo(Payload) returns (Payload);            // latency: one unary round trip
//!   rpc Feed(FeedRequest) returns (stream Payload); // throughput: the server streams
//! }
//! ```

use tonic_build::manual::{Builder, Method, Service};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let method = |name: &str, route: &str, input: &str| {
        Method::builder()
            .name(name)
            .route_name(route)
            .input_type(input)
            .output_type("super::Payload")
            .codec_path("tonic_prost::ProstCodec")
    };
    let lab = Service::builder()
        .name("Lab")
        .package("shmsock.lab")
        .method(method("echo", "Echo", "super::Payload").build())
        .method(
            method("feed", "Feed", "super::FeedRequest")
                .server_streaming()
                .build(),
        )
        .build();
    Builder::new().compile(&[lab]);
}
