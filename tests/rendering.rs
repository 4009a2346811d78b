//! What a user reads, pinned as snapshots in `tests/snapshots/`: the
//! digest, a diff and an ncu table, as terminal text and Markdown. Their
//! numbers are checked against nsys and ncu by the other modules; these
//! files pin how they are shown, so that a change to a table, a note or a
//! rounding shows up in review as a change to them.

use crate::common::run;

/// One binary's stdout. Inputs are named relative to the checkout, the
/// directory cargo runs the tests in, so that no machine's path enters a
/// snapshot.
fn output(bin: &str, args: &[&str]) -> String {
    let (code, out, err) = run(bin, args);
    assert_eq!(code, 0, "{err}");
    out
}

const GRAPHS: &str = "samples/h200_llama8_graphs_node_1step.sqlite.gz";
const PIECEWISE: &str = "samples/h200_llama8_piecewise_node_1step.sqlite.gz";
const NCU: &str = "samples/ncu/h200_llama2L_fullset_40kernels.details.csv.gz";

#[test]
fn digest_of_a_graph_profile_in_the_terminal() {
    insta::assert_snapshot!(output("nsys-digest", &[GRAPHS]));
}

#[test]
fn digest_of_a_graph_profile_in_markdown() {
    insta::assert_snapshot!(output("nsys-digest", &[GRAPHS, "-f", "markdown"]));
}

#[test]
fn diff_from_full_to_piecewise_graphs_in_markdown() {
    insta::assert_snapshot!(output(
        "nsys-digest",
        &["diff", GRAPHS, PIECEWISE, "-f", "markdown"]
    ));
}

#[test]
fn ncu_kernels_in_the_terminal() {
    insta::assert_snapshot!(output("ncu-digest", &[NCU]));
}
