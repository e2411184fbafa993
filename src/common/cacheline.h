/*
 * cacheline.h - the one cache-line constant. 64 bytes on the x86-64 and
 * Arm (Cortex-A78, Neoverse) cores GPUCache targets; also the alignment
 * ISA-L's SIMD tables like best.
 */
#ifndef GPC_COMMON_CACHELINE_H
#define GPC_COMMON_CACHELINE_H

#define GPC_CACHELINE 64u

#endif
