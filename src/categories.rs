//! Kernel categories by name pattern, one table shared by nsys-digest
//! (hotspots) and ncu-digest (`--kernel CATEGORY`). Patterns are
//! case-insensitive regexes tried in table order; the first match wins, so
//! specific categories (communication, attention) come before broad ones
//! (elementwise). Users add patterns with `--category NAME=REGEX`, which are
//! tried before the built-in table.

use regex::{Regex, RegexBuilder};
use serde::Serialize;

/// The built-in table: (category, pattern). Documented in docs/llm-view.md.
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "communication",
        r"nccl|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|sendrecv|cross_device|custom_ar|one_shot|two_shot|one_?rank_?reduce",
    ),
    (
        "attention",
        r"flash|fmha|sdpa|attention|attn|paged_?attention|xformers|flashinfer|mha_|_mha|mla_|softmax_?decode|unified_attention",
    ),
    (
        "gemm",
        r"gemm|gemv|nvjet|cutlass|cublas|matmul|xmma|wgmma|hmma|splitk|_tst_|sm\d+_.*_tn|bmm",
    ),
    (
        "norm",
        r"layer_?norm|rms_?norm|norm_kernel|batch_?norm|group_?norm|instance_?norm|fused_add_rms",
    ),
    (
        "copy/memory",
        r"copy|memcpy|memset|catarray|cat_|transpose|gather_kernel|scatter_kernel|index_select|fill|embedding",
    ),
    (
        "reduction",
        r"reduce|reduction|softmax|argmax|argmin|topk|top_k|sum_kernel|mean_kernel|cumsum|sort",
    ),
    (
        "elementwise",
        r"elementwise|vectorized|unrolled|silu|gelu|relu|swiglu|act_and_mul|rotary|rope|pointwise|triton_poi",
    ),
];

/// Category names a user may pass to `--kernel`, with `copy` as a short alias.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).chain(["other"]).collect()
}

/// A compiled category table.
#[derive(Debug, Clone)]
pub struct Categories {
    rules: Vec<(String, Regex)>,
}

/// A user pattern that does not compile, or lacks `NAME=REGEX`.
#[derive(Debug, thiserror::Error)]
#[error("bad category pattern {spec:?}: {reason}")]
pub struct CategoryError {
    pub spec: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryRule {
    pub category: String,
    pub pattern: String,
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
}

impl Default for Categories {
    fn default() -> Self {
        Categories {
            rules: BUILTIN
                .iter()
                .map(|(n, p)| (n.to_string(), compile(p).expect("built-in pattern")))
                .collect(),
        }
    }
}

impl Categories {
    /// The built-in table with user rules (`NAME=REGEX`) tried first.
    pub fn with_user_rules(specs: &[String]) -> Result<Categories, CategoryError> {
        let mut rules = Vec::new();
        for spec in specs {
            // An empty pattern matches every kernel, and an empty name
            // labels them with nothing: both are typos, not rules.
            let (name, pattern) = spec
                .split_once('=')
                .filter(|(n, p)| !n.trim().is_empty() && !p.is_empty())
                .ok_or_else(|| CategoryError {
                    spec: spec.clone(),
                    reason: "expected NAME=REGEX, both non-empty".into(),
                })?;
            let re = compile(pattern).map_err(|e| CategoryError {
                spec: spec.clone(),
                reason: e.to_string(),
            })?;
            rules.push((name.trim().to_string(), re));
        }
        rules.extend(Categories::default().rules);
        Ok(Categories { rules })
    }

    /// The category of a kernel name; `other` when nothing matches.
    pub fn classify(&self, kernel: &str) -> &str {
        self.rules
            .iter()
            .find(|(_, re)| re.is_match(kernel))
            .map(|(n, _)| n.as_str())
            .unwrap_or("other")
    }

    /// Is `name` a known category (built-in, alias or user-defined)?
    pub fn canonical(&self, name: &str) -> Option<String> {
        let lower = name.to_ascii_lowercase();
        let lower = if lower == "copy" || lower == "memory" {
            "copy/memory".to_string()
        } else {
            lower
        };
        self.rules
            .iter()
            .map(|(n, _)| n.clone())
            .chain(["other".to_string()])
            .find(|n| *n == lower)
    }

    pub fn rules(&self) -> Vec<CategoryRule> {
        self.rules
            .iter()
            .map(|(n, re)| CategoryRule {
                category: n.clone(),
                pattern: re.as_str().to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_kernel_names_fall_in_the_expected_category() {
        let c = Categories::default();
        let cases = [
            ("cudnn_generated_fort_native_sdpa_sm80_flash_fprop_wmma_f16_knob_35", "attention"),
            ("nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_TNT", "gemm"),
            ("void cublasLt::splitKreduce_kernel<(int)32>", "gemm"),
            ("void at::native::elementwise_kernel<(int)128, (int)4, void at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda", "copy/memory"),
            ("void at::native::reduce_kernel<(int)512, (int)1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>", "reduction"),
            ("void at::native::vectorized_elementwise_kernel<(int)4, at::native::silu_kernel", "elementwise"),
            ("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", "communication"),
            ("void <unnamed>::oneRankReduce<FuncPreMulSum<float>>(void *, void *, unsigned long, unsigned long, bool)", "communication"),
            ("my_custom_kernel", "other"),
        ];
        for (name, want) in cases {
            assert_eq!(c.classify(name), want, "{name}");
        }
    }

    #[test]
    fn user_rules_win_and_bad_ones_are_reported() {
        let c = Categories::with_user_rules(&["moe=fused_moe".into()]).unwrap();
        assert_eq!(c.classify("fused_moe_kernel_gemm"), "moe");
        assert!(Categories::with_user_rules(&["x=(".into()]).is_err());
        assert!(Categories::with_user_rules(&["nopattern".into()]).is_err());
        for half_empty in ["=fused_moe", "moe=", " =x"] {
            assert!(
                Categories::with_user_rules(&[half_empty.into()]).is_err(),
                "{half_empty}"
            );
        }
    }
}
