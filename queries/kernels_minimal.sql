-- Kernel activity for trimmed exports that lack globalPid and graphNodeId
-- (seen in synthetic fixtures); such kernels join no runtime call.
SELECT start, end, deviceId, streamId, correlationId, NULL,
       shortName, demangledName,
       NULL
FROM CUPTI_ACTIVITY_KIND_KERNEL
ORDER BY rowid
