/* TEST HARNESS ONLY, never shipped: Wine 8.0 has no bcryptprimitives.dll, and cryptography's
 * Rust extension (_rust.pyd) imports ProcessPrng from it ("DLL load failed while importing
 * _rust"). Real Windows 10/11 has the DLL. This one-function stand-in fills the buffer from
 * RtlGenRandom (advapi32!SystemFunction036), which Wine implements. Built by
 * scripts/wine/wine_env.py with Debian's gcc-mingw-w64-x86-64 into the Wine prefix's system32. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;  /* ProcessPrng never fails on Windows; RtlGenRandom does not either */
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
