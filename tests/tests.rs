//! One integration-test binary (one link step); each module covers a theme.

mod bad_input;
mod batch_diff;
mod cli;
mod common;
mod groundtruth;
mod hostile;
mod llm;
mod ncu;
mod ncu_rep;
#[cfg(feature = "parquet")]
mod parquet;
mod queries;
mod rendering;
mod reports;
mod thirdparty;
