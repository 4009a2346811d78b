-- Whole-graph executions recorded in graph trace mode (--cuda-graph-trace=graph);
-- correlationId is that of the launching cudaGraphLaunch call.
SELECT start, end, deviceId, streamId, correlationId, globalPid, graphId, graphExecId
FROM CUPTI_ACTIVITY_KIND_GRAPH_TRACE
