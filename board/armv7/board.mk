# How the Makefile builds and tests for the armv7 board without containers:
# the Debian cross linker, the qemu-user emulator and its sysroot, and the
# Debian packages that provide them (empty on the host's own architecture).
LINKER   := arm-linux-gnueabihf-gcc
QEMU     := qemu-arm
SYSROOT  := /usr/arm-linux-gnueabihf
PACKAGES := gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
