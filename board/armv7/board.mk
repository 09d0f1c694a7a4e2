# How the Makefile builds and tests for the armv7 board without containers:
# the Debian cross linker, the qemu-user emulator and its sysroot, and the
# Debian packages that provide them (empty on the host's own architecture).
LINKER   := arm-linux-gnueabihf-gcc
QEMU     := qemu-arm
SYSROOT  := /usr/arm-linux-gnueabihf
PACKAGES := gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
# Release opt-level for this board, the smallest as measured (stripped ctigw,
# board/opt-sizes.sh): z: 1,215,952 bytes vs s 1,322,436, 2 1,592,772, 3 1,719,760 (with TLS).
OPT_LEVEL := z
