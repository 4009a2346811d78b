-- Kernel activity, columns present in every real export since 2021.
SELECT start, end, deviceId, streamId, correlationId, globalPid,
       shortName, demangledName,
       gridX, gridY, gridZ, blockX, blockY, blockZ,
       graphNodeId
FROM CUPTI_ACTIVITY_KIND_KERNEL
ORDER BY rowid
