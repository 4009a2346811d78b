-- Graph node creations and clones: an instantiated (exec) node points back to
-- the node captured from the stream through originalGraphNodeId.
SELECT start, globalTid, graphNodeId, originalGraphNodeId
FROM CUDA_GRAPH_NODE_EVENTS
