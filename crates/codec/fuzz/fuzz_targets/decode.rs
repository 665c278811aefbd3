#![no_main]
use libfuzzer_sys::fuzz_target;
fuzz_target!(|data: &[u8]| {
    let mut buf = bytes::BytesMut::from(data);
    let _ = hookmq_codec::decode(&mut buf, None, u32::MAX);
});
