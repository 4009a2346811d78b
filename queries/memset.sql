-- Memory sets.
SELECT start, end, deviceId, streamId, correlationId, globalPid, bytes
FROM CUPTI_ACTIVITY_KIND_MEMSET
