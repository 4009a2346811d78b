-- Kernel activity, columns present in every real export since 2021.
SELECT start, end, deviceId, streamId, correlationId, globalPid,
       shortName, demangledName,
       graphNodeId
FROM CUPTI_ACTIVITY_KIND_KERNEL
ORDER BY rowid
