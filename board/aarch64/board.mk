# How the Makefile builds and tests for the aarch64 board without containers:
# the Debian cross linker, the qemu-user emulator and its sysroot, and the
# Debian packages that provide them (empty on the host's own architecture).
LINKER   := aarch64-linux-gnu-gcc
QEMU     := qemu-aarch64
SYSROOT  := /usr/aarch64-linux-gnu
PACKAGES := gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
# Release opt-level for this board, the smallest as measured (stripped ctigw,
# board/opt-sizes.sh): z: 1,513,224 bytes vs s 1,578,744, 2 1,775,352, 3 1,971,976 (with TLS).
OPT_LEVEL := z
