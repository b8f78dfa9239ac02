/** The vhost-net control plane over the Foreign Function &amp; Memory API. */
package io.vhostffm.vhost;
