-- CUDA device ordinal to GPU id, per process.
SELECT gpuId, cudaId, pid FROM TARGET_INFO_CUDA_DEVICE
