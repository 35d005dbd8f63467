//! Arbitrary bytes as a picture (`characters::avatar::prepare`): a card's avatar or a file the
//! user picks, decoded and cut to the 512 px square and the thumbnail. Any input must give the
//! pictures or an error, within the memory the header check allows.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = troupe::characters::avatar::prepare(data, None);
});
