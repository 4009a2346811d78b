-- Kernel activity for trimmed exports that lack globalPid and graphNodeId
-- (seen in synthetic fixtures); such kernels join no runtime call. Read
-- like kernels.sql.
SELECT digest_rows(rowid, start, end, deviceId, streamId, correlationId, NULL,
                   shortName, demangledName, NULL)
FROM CUPTI_ACTIVITY_KIND_KERNEL NOT INDEXED
