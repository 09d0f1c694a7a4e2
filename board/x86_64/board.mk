# How the Makefile builds and tests for the x86_64 board without containers:
# the Debian cross linker, the qemu-user emulator and its sysroot, and the
# Debian packages that provide them (empty on the host's own architecture).
LINKER   := 
QEMU     := 
SYSROOT  := 
PACKAGES := 
# Release opt-level for this board, the smallest as measured (stripped ctigw,
# board/opt-sizes.sh): s, as the ARM boards.
OPT_LEVEL := s
