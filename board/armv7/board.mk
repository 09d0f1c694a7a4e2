# How the Makefile builds and tests for the armv7 board without containers:
# the Debian cross linker, the qemu-user emulator and its sysroot, and the
# Debian packages that provide them (empty on the host's own architecture).
LINKER   := arm-linux-gnueabihf-gcc
QEMU     := qemu-arm
SYSROOT  := /usr/arm-linux-gnueabihf
PACKAGES := gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
# Release opt-level for this board, the smallest as measured (stripped ctigw,
# board/opt-sizes.sh): z: 687,544 bytes vs s 736,684, 2 851,372, 3 875,960.
OPT_LEVEL := z
