//! `+zip` and `+compressedtar` code (zip; tar plain or compressed with gzip, bzip2 or xz), as
//! `kelp up` unpacks it: the first byte picks the reader, the rest is the archive, unpacked into
//! a fresh directory. Nothing may land beside that directory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, archive)) = data.split_first() else { return };
    let base = tempfile::tempdir().expect("a temporary directory");
    let dir = base.path().join("code");
    std::fs::create_dir(&dir).expect("the code directory");
    let _ = if choice % 2 == 0 {
        kelp_local::fuzzing::unpack_zip(archive, &dir)
    } else {
        kelp_local::fuzzing::unpack_tar(archive, &dir)
    };
    let beside: Vec<_> =
        std::fs::read_dir(base.path()).expect("the base directory").flatten().map(|e| e.file_name()).collect();
    assert_eq!(beside, ["code"], "an archive entry was written outside the code directory");
});
