//! File names that are not UTF-8 (a Unix name is any bytes; Python hands them over as
//! `os.fsencode` would): shown with each byte that is not part of valid UTF-8 as `\xNN`,
//! as `ls -b` and Python's `repr` show it, so reports, warnings and errors stay valid UTF-8
//! text (JSON, HTML) and still name the file. `path_of` turns such a name back into the
//! bytes to open.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The text a path is shown as: itself when it is UTF-8; else every invalid byte as `\xNN`
/// and every backslash as `\\` (so that `path_of` can undo it exactly).
pub fn display_name(path: &Path) -> String {
    let bytes = path.as_os_str().as_bytes();
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// The path to open for a name `display_name` gave: the name itself when such a file
/// exists or it holds no escape, else the bytes its escapes stand for.
pub fn path_of(name: &str) -> PathBuf {
    if !name.contains('\\') || Path::new(name).exists() {
        return PathBuf::from(name);
    }
    unescape(name).map_or_else(|| PathBuf::from(name), |b| OsString::from_vec(b).into())
}

fn unescape(name: &str) -> Option<Vec<u8>> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1)? {
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'x' => {
                let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_bytes_show_as_escapes_and_come_back() {
        let raw = PathBuf::from(OsString::from_vec(b"/tmp/caf\xe9 \\x41 \xff.pcap".to_vec()));
        let name = display_name(&raw);
        assert_eq!(name, "/tmp/caf\\xe9 \\\\x41 \\xff.pcap");
        assert_eq!(path_of(&name), raw);
        assert_eq!(display_name(Path::new("/tmp/café.pcap")), "/tmp/café.pcap");
        assert_eq!(path_of("/tmp/a\\b"), PathBuf::from("/tmp/a\\b")); // no valid escape
        assert_eq!(unescape("a\\x4"), None);
    }
}
