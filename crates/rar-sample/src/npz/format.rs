//! The bytes of the file: the NPY header and the zip records around the one stored member.

pub(crate) const MEMBER_NAME: &[u8] = b"arr_0.npy";
pub(crate) const LOCAL_HEADER_LEN: u64 = 30 + MEMBER_NAME.len() as u64 + 20;
pub(crate) const CRC_OFFSET: u64 = 14;
/// MS-DOS date/time of 1980-01-01 00:00 (the zip epoch): a fixed stamp keeps files reproducible.
pub(crate) const DOS_TIME: u16 = 0;
pub(crate) const DOS_DATE: u16 = (1 << 5) | 1;

/// NPY v1.0 header for a C-order uint8 array, padded so the data starts 64-byte aligned.
pub(crate) fn npy_header(shape: &[usize; 4]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '|u1', 'fortran_order': False, 'shape': ({}, {}, {}, {}), }}",
        shape[0], shape[1], shape[2], shape[3]
    );
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Zip local file header for the stored member, zip64 sizes in the extra field, CRC 0.
pub(crate) fn local_header(member_len: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(LOCAL_HEADER_LEN as usize);
    h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    h.extend_from_slice(&45u16.to_le_bytes()); // version needed: zip64
    h.extend_from_slice(&0u16.to_le_bytes()); // flags
    h.extend_from_slice(&0u16.to_le_bytes()); // stored
    h.extend_from_slice(&DOS_TIME.to_le_bytes());
    h.extend_from_slice(&DOS_DATE.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes()); // CRC placeholder, patched by finish()
    h.extend_from_slice(&u32::MAX.to_le_bytes()); // compressed size → zip64 extra
    h.extend_from_slice(&u32::MAX.to_le_bytes()); // uncompressed size → zip64 extra
    h.extend_from_slice(&(MEMBER_NAME.len() as u16).to_le_bytes());
    h.extend_from_slice(&20u16.to_le_bytes()); // extra length
    h.extend_from_slice(MEMBER_NAME);
    h.extend_from_slice(&1u16.to_le_bytes()); // zip64 extended information
    h.extend_from_slice(&16u16.to_le_bytes());
    h.extend_from_slice(&member_len.to_le_bytes()); // uncompressed
    h.extend_from_slice(&member_len.to_le_bytes()); // compressed (stored)
    h
}

/// The central directory entry of the member (local header at offset 0).
pub(crate) fn central_directory(crc: u32, member_len: u64) -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    c.extend_from_slice(&45u16.to_le_bytes()); // made by
    c.extend_from_slice(&45u16.to_le_bytes()); // needed
    c.extend_from_slice(&0u16.to_le_bytes()); // flags
    c.extend_from_slice(&0u16.to_le_bytes()); // stored
    c.extend_from_slice(&DOS_TIME.to_le_bytes());
    c.extend_from_slice(&DOS_DATE.to_le_bytes());
    c.extend_from_slice(&crc.to_le_bytes());
    c.extend_from_slice(&u32::MAX.to_le_bytes());
    c.extend_from_slice(&u32::MAX.to_le_bytes());
    c.extend_from_slice(&(MEMBER_NAME.len() as u16).to_le_bytes());
    c.extend_from_slice(&20u16.to_le_bytes()); // extra length
    c.extend_from_slice(&0u16.to_le_bytes()); // comment length
    c.extend_from_slice(&0u16.to_le_bytes()); // disk number start
    c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
    c.extend_from_slice(&0u32.to_le_bytes()); // external attributes
    c.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    c.extend_from_slice(MEMBER_NAME);
    c.extend_from_slice(&1u16.to_le_bytes());
    c.extend_from_slice(&16u16.to_le_bytes());
    c.extend_from_slice(&member_len.to_le_bytes());
    c.extend_from_slice(&member_len.to_le_bytes());
    c
}

/// Zip64 end of central directory record, its locator, and the classic end record.
pub(crate) fn end_records(cd_offset: u64, cd_len: u64) -> Vec<u8> {
    let zip64_eocd_offset = cd_offset + cd_len;
    let mut e = Vec::new();
    e.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    e.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of the record
    e.extend_from_slice(&45u16.to_le_bytes());
    e.extend_from_slice(&45u16.to_le_bytes());
    e.extend_from_slice(&0u32.to_le_bytes()); // this disk
    e.extend_from_slice(&0u32.to_le_bytes()); // disk with the central directory
    e.extend_from_slice(&1u64.to_le_bytes()); // entries on this disk
    e.extend_from_slice(&1u64.to_le_bytes()); // entries in total
    e.extend_from_slice(&cd_len.to_le_bytes());
    e.extend_from_slice(&cd_offset.to_le_bytes());
    e.extend_from_slice(&0x0706_4b50u32.to_le_bytes()); // locator
    e.extend_from_slice(&0u32.to_le_bytes());
    e.extend_from_slice(&zip64_eocd_offset.to_le_bytes());
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&0x0605_4b50u32.to_le_bytes()); // classic end record
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes());
    e.extend_from_slice(&1u16.to_le_bytes());
    e.extend_from_slice(&1u16.to_le_bytes());
    e.extend_from_slice(&(cd_len.min(u32::MAX as u64) as u32).to_le_bytes());
    e.extend_from_slice(&(cd_offset.min(u32::MAX as u64) as u32).to_le_bytes());
    e.extend_from_slice(&0u16.to_le_bytes()); // comment length
    e
}
