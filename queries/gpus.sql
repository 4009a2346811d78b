-- GPUs seen by the capture; memoryBandwidth is in byte/s, clockRate in Hz.
SELECT id, name, memoryBandwidth, smCount, clockRate FROM TARGET_INFO_GPU
