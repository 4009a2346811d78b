-- Memory copies; copyKind points into ENUM_CUDA_MEMCPY_OPER.
SELECT start, end, deviceId, streamId, correlationId, globalPid, bytes, copyKind
FROM CUPTI_ACTIVITY_KIND_MEMCPY
