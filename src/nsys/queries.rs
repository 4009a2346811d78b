//! The SQL that reads an export, kept in `queries/*.sql` and compiled in.
//! Every query is static: user input only ever reaches SQLite as a bound
//! parameter. Each query lists the tables and columns it needs, so the schema
//! check can choose a decoder before anything is prepared.

/// One SQL text plus what it needs from the schema.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    pub sql: &'static str,
    /// (table, columns) pairs that must exist for the query to prepare.
    pub needs: &'static [(&'static str, &'static [&'static str])],
}

macro_rules! query {
    ($ident:ident, $file:literal, [$(($table:literal, [$($col:literal),*])),*]) => {
        pub const $ident: Query = Query {
            name: $file,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/queries/", $file)),
            needs: &[$(($table, &[$($col),*])),*],
        };
    };
}

query!(TABLES, "tables.sql", []);
query!(COLUMNS, "columns.sql", []);
query!(
    META_EXPORT,
    "meta_export.sql",
    [("META_DATA_EXPORT", ["name", "value"])]
);
query!(
    META_EXPORT_LEGACY,
    "meta_export_legacy.sql",
    [("EXPORT_META_DATA", ["name", "value"])]
);
query!(
    META_CAPTURE,
    "meta_capture.sql",
    [("META_DATA_CAPTURE", ["name", "value"])]
);
query!(STRINGS, "strings.sql", [("StringIds", ["id", "value"])]);
query!(
    KERNELS,
    "kernels.sql",
    [(
        "CUPTI_ACTIVITY_KIND_KERNEL",
        [
            "start",
            "end",
            "deviceId",
            "streamId",
            "correlationId",
            "globalPid",
            "shortName",
            "demangledName",
            "graphNodeId"
        ]
    )]
);
query!(
    KERNELS_MINIMAL,
    "kernels_minimal.sql",
    [(
        "CUPTI_ACTIVITY_KIND_KERNEL",
        [
            "start",
            "end",
            "deviceId",
            "streamId",
            "correlationId",
            "shortName",
            "demangledName"
        ]
    )]
);
query!(
    KERNEL_MANGLED_NAMES,
    "kernel_mangled_names.sql",
    [("CUPTI_ACTIVITY_KIND_KERNEL", ["mangledName"])]
);
query!(
    RUNTIME,
    "runtime.sql",
    [(
        "CUPTI_ACTIVITY_KIND_RUNTIME",
        ["start", "end", "globalTid", "correlationId", "nameId"]
    )]
);
query!(
    NVTX,
    "nvtx.sql",
    [
        (
            "NVTX_EVENTS",
            [
                "start",
                "end",
                "eventType",
                "globalTid",
                "endGlobalTid",
                "textId",
                "text",
                "domainId"
            ]
        ),
        ("StringIds", ["id", "value"])
    ]
);
/// NVTX_EVENTS as the page reader reads it; it needs what `nvtx.sql` does,
/// which SQLite runs wherever the page reader declines.
pub const NVTX_PAGES: Query = Query {
    name: "nvtx_pages.sql",
    sql: include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/queries/nvtx_pages.sql"
    )),
    needs: NVTX.needs,
};
query!(
    MEMCPY,
    "memcpy.sql",
    [(
        "CUPTI_ACTIVITY_KIND_MEMCPY",
        [
            "start",
            "end",
            "deviceId",
            "streamId",
            "correlationId",
            "globalPid",
            "bytes",
            "copyKind"
        ]
    )]
);
query!(
    MEMSET,
    "memset.sql",
    [(
        "CUPTI_ACTIVITY_KIND_MEMSET",
        [
            "start",
            "end",
            "deviceId",
            "streamId",
            "correlationId",
            "globalPid",
            "bytes"
        ]
    )]
);
query!(
    MEMCPY_KINDS,
    "memcpy_kinds.sql",
    [("ENUM_CUDA_MEMCPY_OPER", ["id", "label"])]
);
query!(
    GPUS,
    "gpus.sql",
    [(
        "TARGET_INFO_GPU",
        ["id", "name", "memoryBandwidth", "smCount", "clockRate"]
    )]
);
query!(
    ANALYSIS_SPAN,
    "analysis_span.sql",
    [("ANALYSIS_DETAILS", ["startTime", "stopTime"])]
);

query!(
    GRAPH_TRACE,
    "graph_trace.sql",
    [(
        "CUPTI_ACTIVITY_KIND_GRAPH_TRACE",
        [
            "start",
            "end",
            "deviceId",
            "streamId",
            "correlationId",
            "globalPid",
            "graphId",
            "graphExecId"
        ]
    )]
);
query!(
    GRAPH_NODE_EVENTS,
    "graph_node_events.sql",
    [(
        "CUDA_GRAPH_NODE_EVENTS",
        ["start", "globalTid", "graphNodeId", "originalGraphNodeId"]
    )]
);
query!(
    KERNEL_GRAPH_IDS,
    "kernel_graph_ids.sql",
    [("CUPTI_ACTIVITY_KIND_KERNEL", ["graphId"])]
);

query!(
    KERNEL_ROWS,
    "kernel_rows.sql",
    [("CUPTI_ACTIVITY_KIND_KERNEL", [])]
);
query!(
    RUNTIME_ROWS,
    "runtime_rows.sql",
    [("CUPTI_ACTIVITY_KIND_RUNTIME", [])]
);

/// Every query, for the test that prepares each one against every export.
pub const ALL: &[Query] = &[
    TABLES,
    COLUMNS,
    META_EXPORT,
    META_EXPORT_LEGACY,
    META_CAPTURE,
    STRINGS,
    KERNELS,
    KERNELS_MINIMAL,
    KERNEL_MANGLED_NAMES,
    RUNTIME,
    NVTX,
    NVTX_PAGES,
    MEMCPY,
    MEMSET,
    MEMCPY_KINDS,
    GPUS,
    ANALYSIS_SPAN,
    GRAPH_TRACE,
    GRAPH_NODE_EVENTS,
    KERNEL_GRAPH_IDS,
    KERNEL_ROWS,
    RUNTIME_ROWS,
];
