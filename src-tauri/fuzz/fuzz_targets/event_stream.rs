//! Arbitrary bytes as a remote server's reply stream (`engine::remote::read_event_stream`),
//! cut into chunks of a size the input's first byte picks, as a network delivers them. Any
//! input must give the events or the reason it is not a chat stream.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let _ = troupe::engine::remote::read_event_stream(stream, usize::from(chunk) + 1);
});
