/** Early live migration of a vhost-net device. */
package io.vhostffm.migration;
