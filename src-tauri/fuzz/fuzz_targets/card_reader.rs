//! Arbitrary bytes into `characters::card::read`: PNG chunk walking, zlib text chunks, base64,
//! JSON, CHARX zips. Any input must give a card, a lorebook or a `CardError`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = troupe::characters::card::read(data);
});
