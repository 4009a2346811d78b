-- Labels of memcpy kinds ("Host-to-Device", ...).
SELECT id, label FROM ENUM_CUDA_MEMCPY_OPER
