//! `--filter` through libpcap: its compiler (`pcap_open_dead` + `pcap_compile`, once per
//! link type met) and its filter machine (`bpf_filter`, once per frame), so the expression
//! means what it means to tcpdump and to `live --bpf`.
//!
//! libpcap is not linked: Python loads it (ctypes, tcptrace/bpf.py) and hands over the
//! addresses of the six functions used here; the library stays loaded for the life of the
//! process (tcptrace.sources.live keeps the CDLL). Each compiled program is copied into
//! Rust-owned memory and libpcap's copy freed at once.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::filter::{Filter, FilterMachine, FrameProgram};

/// `struct bpf_insn` (pcap/bpf.h).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct BpfInsn {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct bpf_program` (pcap/bpf.h).
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut BpfInsn,
}

type OpenDead = unsafe extern "C" fn(c_int, c_int) -> *mut c_void;
type Compile =
    unsafe extern "C" fn(*mut c_void, *mut BpfProgram, *const c_char, c_int, u32) -> c_int;
type GetErr = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type FreeCode = unsafe extern "C" fn(*mut BpfProgram);
type Close = unsafe extern "C" fn(*mut c_void);
type Run = unsafe extern "C" fn(*const BpfInsn, *const u8, c_uint, c_uint) -> c_uint;

/// libpcap's default snap length (MAXIMUM_SNAPLEN): the compiler never cuts a load short.
const SNAPLEN: c_int = 262_144;
const PCAP_NETMASK_UNKNOWN: u32 = 0xFFFF_FFFF;
/// libpcap 1.10 fails to compile what its optimizer proves never matches; a capture where
/// nothing matches is still a valid answer (`tcp[13] & 2 != 0` on raw IPv6, ...).
const REJECTS_ALL: &str = "expression rejects all packets";
/// `ret #0`: a program that rejects every frame.
const RET_ZERO: BpfInsn = BpfInsn {
    code: 0x06,
    jt: 0,
    jf: 0,
    k: 0,
};

#[cfg(target_os = "openbsd")]
const DLT_RAW: u32 = 14;
#[cfg(not(target_os = "openbsd"))]
const DLT_RAW: u32 = 12;

/// The DLT_* value libpcap's compiler takes for a file's LINKTYPE_* (libpcap's own
/// `linktype_to_dlt` for the link types tcptrace decodes: only raw IP differs; 12 and 14
/// are read as raw IP by decode, as by most readers).
fn dlt_of(linktype: u32) -> u32 {
    match linktype {
        101 | 12 | 14 => DLT_RAW,
        other => other,
    }
}

#[derive(Clone, Copy)]
struct Libpcap {
    open_dead: OpenDead,
    compile: Compile,
    geterr: GetErr,
    freecode: FreeCode,
    close: Close,
    run: Run,
}

impl Libpcap {
    /// Compile `expression` for `linktype`: the instructions, or libpcap's message.
    fn compile(&self, expression: &CStr, linktype: u32) -> Result<Vec<BpfInsn>, String> {
        let dlt = c_int::try_from(dlt_of(linktype)).map_err(|_| "no such link type".to_string())?;
        // SAFETY: pcap_open_dead(3PCAP) takes any link type and snap length; it returns
        // NULL only when out of memory.
        let pcap = unsafe { (self.open_dead)(dlt, SNAPLEN) };
        if pcap.is_null() {
            return Err("libpcap cannot open a handle to compile with".into());
        }
        let mut program = BpfProgram {
            bf_len: 0,
            bf_insns: std::ptr::null_mut(),
        };
        // SAFETY: `pcap` is the live handle opened above, `program` a valid bpf_program to
        // fill, `expression` a NUL-terminated string that outlives the call.
        let status = unsafe {
            (self.compile)(
                pcap,
                &mut program,
                expression.as_ptr(),
                1,
                PCAP_NETMASK_UNKNOWN,
            )
        };
        let result = if status < 0 {
            // SAFETY: pcap_geterr returns the handle's NUL-terminated message buffer, valid
            // until the handle is closed (below); it is copied first.
            let message = unsafe { CStr::from_ptr((self.geterr)(pcap)) };
            let message = message.to_string_lossy().into_owned();
            if message.ends_with(REJECTS_ALL) {
                Ok(vec![RET_ZERO])
            } else {
                Err(message)
            }
        } else if program.bf_insns.is_null() || program.bf_len == 0 {
            Err("libpcap compiled an empty program".into())
        } else {
            // SAFETY: on success pcap_compile(3PCAP) fills `program` with bf_len
            // instructions at bf_insns, valid until pcap_freecode (below); they are copied.
            let insns = unsafe {
                std::slice::from_raw_parts(program.bf_insns, program.bf_len as usize).to_vec()
            };
            // SAFETY: `program` was filled by pcap_compile and is freed once.
            unsafe { (self.freecode)(&mut program) };
            Ok(insns)
        };
        // SAFETY: the handle from pcap_open_dead, closed once; nothing refers to it after.
        unsafe { (self.close)(pcap) };
        result
    }
}

/// A link type's program, or libpcap's message when the expression cannot apply to it.
type Compiled = Result<Arc<Program>, String>;

/// One compiled program, run by libpcap's filter machine.
struct Program {
    insns: Vec<BpfInsn>,
    run: Run,
}

impl FrameProgram for Program {
    #[inline]
    fn matches(&self, frame: &[u8], wirelen: u32) -> bool {
        // A frame's caplen is a u32 (the capture formats' field): it fits c_uint
        let buflen = c_uint::try_from(frame.len()).unwrap_or(c_uint::MAX);
        // SAFETY: `insns` is a program libpcap's compiler produced (forward jumps within
        // it, ending in a return) or `ret #0`; bpf_filter(3) checks every packet load
        // against `buflen`, the length of `frame`, so it reads only the frame's bytes
        // (an empty frame's dangling pointer is never read).
        unsafe { (self.run)(self.insns.as_ptr(), frame.as_ptr(), wirelen, buflen) != 0 }
    }
}

/// The expression and the programs compiled so far, one per link type (or the message of
/// a link type it cannot apply to).
struct Machine {
    text: String,
    expression: CString,
    libpcap: Libpcap,
    programs: Mutex<Vec<(u32, Compiled)>>,
}

impl Machine {
    /// The program for `linktype`, compiled on first use. Compiled under the lock: once
    /// per link type, whatever the threads.
    fn compiled(&self, linktype: u32) -> Compiled {
        let mut programs = self.programs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, known)) = programs.iter().find(|(lt, _)| *lt == linktype) {
            return known.clone();
        }
        let result = self
            .libpcap
            .compile(&self.expression, linktype)
            .map(|insns| {
                Arc::new(Program {
                    insns,
                    run: self.libpcap.run,
                })
            });
        programs.push((linktype, result.clone()));
        result
    }
}

impl FilterMachine for Machine {
    fn expression(&self) -> &str {
        &self.text
    }

    fn program(&self, linktype: u32) -> Result<Arc<dyn FrameProgram>, String> {
        self.compiled(linktype)
            .map(|program| program as Arc<dyn FrameProgram>)
    }
}

/// A `--filter` expression compiled by libpcap: `BpfFilter(expression, symbols)`, where
/// `symbols` are the addresses of libpcap's pcap_open_dead, pcap_compile, pcap_geterr,
/// pcap_freecode, pcap_close and bpf_filter, in that order. Passed to `Run` and
/// `LiveSession` as their `filter`.
#[pyclass(name = "BpfFilter", frozen)]
pub(super) struct BpfFilter {
    machine: Arc<Machine>,
}

impl BpfFilter {
    pub(super) fn filter(&self) -> Filter {
        Filter::new(self.machine.clone())
    }
}

#[pymethods]
impl BpfFilter {
    #[new]
    fn new(
        expression: &str,
        symbols: (usize, usize, usize, usize, usize, usize),
    ) -> PyResult<Self> {
        let (open_dead, compile, geterr, freecode, close, run) = symbols;
        if [open_dead, compile, geterr, freecode, close, run].contains(&0) {
            return Err(PyValueError::new_err("a libpcap function address is 0"));
        }
        let text = CString::new(expression)
            .map_err(|_| PyValueError::new_err("a filter expression cannot hold a NUL byte"))?;
        // SAFETY: the caller (tcptrace/bpf.py) passes the addresses ctypes gives for these
        // libpcap functions, whose C signatures (pcap/pcap.h, pcap/bpf.h) the types above
        // restate; the library is never unloaded. Non-zero was checked.
        let libpcap = unsafe {
            Libpcap {
                open_dead: std::mem::transmute::<usize, OpenDead>(open_dead),
                compile: std::mem::transmute::<usize, Compile>(compile),
                geterr: std::mem::transmute::<usize, GetErr>(geterr),
                freecode: std::mem::transmute::<usize, FreeCode>(freecode),
                close: std::mem::transmute::<usize, Close>(close),
                run: std::mem::transmute::<usize, Run>(run),
            }
        };
        Ok(BpfFilter {
            machine: Arc::new(Machine {
                text: expression.to_string(),
                expression: text,
                libpcap,
                programs: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The expression, as given.
    #[getter]
    fn expression(&self) -> &str {
        &self.machine.text
    }

    /// Compile for `linktype` (LINKTYPE_* number) now: the number of instructions, or
    /// ValueError with libpcap's message. Without the GIL: libpcap's optimiser takes
    /// seconds on an expression of hundreds of terms (10 s for 400 ports, as `tcpdump -d`),
    /// and the caller's thread must stay free to take Ctrl-C meanwhile.
    fn compile(&self, py: Python<'_>, linktype: u32) -> PyResult<usize> {
        let program = py
            .detach(|| self.machine.compiled(linktype))
            .map_err(PyValueError::new_err)?;
        Ok(program.insns.len())
    }

    /// Does `frame` (of `linktype`, `wirelen` bytes on the wire) pass? For tests.
    #[pyo3(signature = (linktype, frame, wirelen=None))]
    fn matches(&self, linktype: u32, frame: &[u8], wirelen: Option<u32>) -> PyResult<bool> {
        let program = self
            .machine
            .compiled(linktype)
            .map_err(PyValueError::new_err)?;
        let wirelen = wirelen.unwrap_or(u32::try_from(frame.len()).unwrap_or(u32::MAX));
        Ok(program.matches(frame, wirelen))
    }
}
