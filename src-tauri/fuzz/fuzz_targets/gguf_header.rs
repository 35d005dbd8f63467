//! Arbitrary bytes as a GGUF file's header (`engine::gguf::read_header_from`): the model
//! manager reads the header of every file it lists. Any input must give a header or a reason.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = troupe::engine::gguf::read_header_from(std::io::Cursor::new(data), data.len() as u64);
});
