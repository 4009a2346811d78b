//! Post-processing for NVIDIA Nsight profiles.
//!
//! - [`nsys`] reads `nsys export --type sqlite` files and computes the
//!   reports `nsys stats` prints — kernels, NVTX ranges with their GPU
//!   projection, kernels per range, launch latency, memory — with the same
//!   numbers, quickly, on large files.
//! - [`render`] prints any report as a terminal table, Markdown, CSV or JSON.
//!
//! ```no_run
//! use nsight_digest::nsys::{digest, DigestOptions};
//! let d = digest("report.sqlite".as_ref(), &DigestOptions::default()).unwrap();
//! println!("{} kernels", d.source.kernels);
//! ```

pub mod batch;
pub mod categories;
pub mod cli;
pub mod diff;
pub mod error;
pub mod export;
pub mod input;
pub mod memory;
pub mod ncu;
pub mod nsys;
pub mod nvidia_tools;
pub mod render;
pub mod stats;
pub mod svg;

pub use error::{DigestError, Result};
