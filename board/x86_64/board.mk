# How the Makefile builds and tests for the x86_64 board without containers:
# the Debian cross linker, the qemu-user emulator and its sysroot, and the
# Debian packages that provide them (empty on the host's own architecture).
LINKER   := 
QEMU     := 
SYSROOT  := 
PACKAGES := 
# Release opt-level for this board: "s", Cargo.toml's; the host has room,
# so its size was not traded for speed as the ARM boards' is (board/opt-sizes.sh).
OPT_LEVEL := s
