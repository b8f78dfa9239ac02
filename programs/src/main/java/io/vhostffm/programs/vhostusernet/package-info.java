/** The {@code vhost-user-net} program: a vhost-user virtio-net backend on a TAP. */
package io.vhostffm.programs.vhostusernet;
