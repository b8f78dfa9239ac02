package io.vhostffm.migration;

import io.vhostffm.migration.internal.Acknowledgement;
import io.vhostffm.migration.internal.Manifest;
import io.vhostffm.migration.jfr.MigrationPhaseEvent;
import io.vhostffm.migration.schema.StateDecodeException;
import io.vhostffm.migration.schema.StateSchema;
import io.vhostffm.migration.stream.MigrationStreamReader;
import io.vhostffm.migration.stream.MigrationStreamWriter;
import io.vhostffm.migration.stream.Section;
import io.vhostffm.migration.stream.StreamFormat;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/**
 * The sending end of an early migration, generic over the registered state sections.
 *
 * <ol>
 * <li>{@link #setup()}: sends the manifest and the full state of every section
 *     (INIT_STATE), and keeps a snapshot of each.</li>
 * <li>{@link #sendPrecopyDelta()}, whenever the caller reports that the guest changed device
 *     state (a control-queue command, a status write): compares every section with its
 *     snapshot and sends the changed ones at once (DELTA), so the switchover need not.</li>
 * <li>{@link #stopAndCopy(BackendStop)}, with the guest paused: stops the backend, compares,
 *     and sends either the final indices alone (NO_DATA) or the changed sections and the
 *     indices; then the end marker.</li>
 * <li>{@link #awaitAcknowledgement}: reads the destination's answer from the return path.</li>
 * </ol>
 * A failure at any step leaves the guest with the source: the caller resumes it. A failure of
 * the destination or the connection (a write or read that failed or timed out, the end of the
 * return path) is a {@link MigrationPeerException} naming the phase; no raw I/O exception escapes.
 * After such a failure the stream is in an unknown state and the source refuses further steps. Not
 * thread-safe: drive one migration from one thread (or serialize the calls).
 */
public final class MigrationSource {
    private static final StateSchema<Manifest> MANIFEST = StateSchema.of(Manifest.class);
    private static final StateSchema<FinalPositions> INDICES = StateSchema.of(FinalPositions.class);
    private static final StateSchema<Acknowledgement> ACK = StateSchema.of(Acknowledgement.class);

    private enum Phase { NEW, PRECOPY, DONE, FAILED }

    private final MigrationStreamWriter out;
    private final List<RegisteredSection<?>> sections;
    private Phase phase = Phase.NEW;
    private String peer = "the destination";

    private long setupNanos;
    private long setupBytes;
    private int precopyMessages;
    private long precopyNanos;
    private long precopyBytes;
    private long stopAndCopyNanos;
    private long backendStopNanos;
    private long stopAndCopyBytes;
    private int switchoverSections;
    private long destinationEarlyLoadNanos = -1;
    private long destinationSwitchoverNanos = -1;
    private long pausedAt = -1;
    private long sentAt = -1;
    private DeviceDowntime downtime;

    /**
     * @param out the stream to the destination
     * @param sections the device's state sections, in sending order; ids unique
     */
    public MigrationSource(MigrationStreamWriter out, List<? extends DeviceStateSection<?>> sections) {
        this.out = out;
        this.sections = RegisteredSection.register(sections);
    }

    /** Who the destination is, in words, for {@link MigrationPeerException}s (default "the destination"). */
    public void setPeer(String words) {
        this.peer = java.util.Objects.requireNonNull(words, "words");
    }

    /**
     * Setup phase: manifest, then the full state of every section; snapshots kept.
     *
     * @throws MigrationPeerException (phase SETUP) when the destination or the connection failed
     * @throws IllegalArgumentException when a section's state holds a null reference (a bug in
     *         the device's {@code capture()}, named by type)
     */
    public void setup() throws MigrationException {
        try {
            setupOrFail();
        } catch (IOException e) {
            throw MigrationPeerException.of(MigrationPhase.SETUP, peer, e);
        }
    }

    private void setupOrFail() throws IOException {
        requirePhase(Phase.NEW, "setup");
        phase = Phase.FAILED; // until it completes
        MigrationPhaseEvent event = new MigrationPhaseEvent();
        event.begin();
        long start = System.nanoTime();
        long bytesBefore = out.bytesWritten();
        List<Manifest.Entry> entries = new ArrayList<>();
        for (RegisteredSection<?> s : sections) {
            entries.add(new Manifest.Entry(s.id, s.name, s.schema.fingerprint()));
        }
        out.writeSection(StreamFormat.MANIFEST, StreamFormat.FLAG_INIT_STATE, MANIFEST.encode(new Manifest(entries)));
        for (int i = 0; i < sections.size(); i++) {
            int flags = StreamFormat.FLAG_INIT_STATE | (i == sections.size() - 1 ? StreamFormat.FLAG_END_OF_DATA : 0);
            sendFull(sections.get(i), flags);
        }
        out.flush();
        phase = Phase.PRECOPY;
        setupNanos = System.nanoTime() - start;
        setupBytes = out.bytesWritten() - bytesBefore;
        commit(event, MigrationPhaseEvent.SETUP, setupBytes);
    }

    private <R extends Record> void sendFull(RegisteredSection<R> s, int flags) throws IOException {
        R live = s.capture();
        out.writeSection(s.id, flags, s.encode(live));
        s.remember(live);
    }

    /**
     * Precopy: the caller reports that the guest changed device state. Sends every section
     * that differs from its snapshot as one message (DELTA, END_OF_DATA on the last), and
     * takes new snapshots.
     *
     * @return the ids of the sections sent; empty when nothing differed (nothing is sent)
     * @throws MigrationPeerException (phase PRECOPY) when the destination or the connection failed
     */
    public List<Integer> sendPrecopyDelta() throws MigrationException {
        try {
            return sendPrecopyDeltaOrFail();
        } catch (IOException e) {
            throw MigrationPeerException.of(MigrationPhase.PRECOPY, peer, e);
        }
    }

    private List<Integer> sendPrecopyDeltaOrFail() throws IOException {
        requirePhase(Phase.PRECOPY, "a precopy delta");
        phase = Phase.FAILED; // until it completes
        MigrationPhaseEvent event = new MigrationPhaseEvent();
        event.begin();
        long start = System.nanoTime();
        long bytesBefore = out.bytesWritten();
        List<Integer> sent = sendChanged(StreamFormat.FLAG_DELTA, true);
        out.flush();
        phase = Phase.PRECOPY;
        if (!sent.isEmpty()) {
            precopyMessages++;
        }
        precopyNanos += System.nanoTime() - start;
        precopyBytes += out.bytesWritten() - bytesBefore;
        commit(event, MigrationPhaseEvent.PRECOPY_DELTA, out.bytesWritten() - bytesBefore);
        return sent;
    }

    /**
     * Rehearses stop-and-copy's own work {@code times} times, during precopy and with nothing
     * sent or remembered: every section captured and compared with what was last sent (as
     * {@link #stopAndCopy} compares), the changed ones encoded, and {@code indices} encoded as the
     * final queue indices are. Stop-and-copy runs once per migration, so without this its compare
     * and encode run interpreted inside the downtime, at every migration of the process: each
     * section's capture and comparison took 0.1-0.8 ms there. Not with the stop-and-copy or a
     * precopy delta at the same time (the caller serialises them, as {@code NetMigrationSource}
     * does under its lock).
     *
     * @throws IllegalStateException outside precopy
     */
    public void rehearseStopAndCopy(int times, FinalPositions indices) {
        requirePhase(Phase.PRECOPY, "a stop-and-copy rehearsal");
        for (int i = 0; i < times; i++) {
            for (RegisteredSection<?> s : sections) {
                rehearseSection(s);
            }
            INDICES.encode(indices);
        }
    }

    private static <R extends Record> void rehearseSection(RegisteredSection<R> s) {
        R live = captureIfChanged(s);
        if (live != null) {
            s.encode(live);
        }
    }

    /** Captures all sections, then sends the changed ones with {@code flags}. */
    private List<Integer> sendChanged(int flags, boolean endOfDataOnLast) throws IOException {
        List<RegisteredSection<?>> changed = new ArrayList<>();
        List<Record> captured = new ArrayList<>();
        for (RegisteredSection<?> s : sections) {
            Record live = captureIfChanged(s);
            if (live != null) {
                changed.add(s);
                captured.add(live);
            }
        }
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < changed.size(); i++) {
            boolean last = i == changed.size() - 1;
            send(changed.get(i), captured.get(i), flags | (last && endOfDataOnLast ? StreamFormat.FLAG_END_OF_DATA : 0));
            ids.add(changed.get(i).id);
        }
        return List.copyOf(ids);
    }

    private static <R extends Record> R captureIfChanged(RegisteredSection<R> s) {
        R live = s.capture();
        return s.changed(live) ? live : null;
    }

    private <R extends Record> void send(RegisteredSection<R> s, Record live, int flags) throws IOException {
        R value = s.cast(live);
        out.writeSection(s.id, flags, s.encode(value));
        s.remember(value);
    }

    /**
     * Stop-and-copy, with the guest paused: stops the backend, compares every section with its
     * snapshot, and sends either QUEUE_INDICES with NO_DATA (nothing changed) or the changed
     * sections (DELTA) followed by QUEUE_INDICES; all frames carry SWITCHOVER, the indices
     * END_OF_DATA; then the end marker.
     *
     * @return the ids of the sections sent; empty for "no delta"
     * @throws MigrationException when the backend stop fails (nothing was sent; the guest stays)
     * @throws MigrationPeerException (phase STOP_AND_COPY) when the destination or the connection
     *     failed (the guest stays)
     */
    public List<Integer> stopAndCopy(BackendStop backend) throws MigrationException {
        requirePhase(Phase.PRECOPY, "stop-and-copy");
        MigrationPhaseEvent event = new MigrationPhaseEvent();
        event.begin();
        long start = MonotonicClock.now(); // the guest is paused: the device downtime starts here
        pausedAt = start;
        long bytesBefore = out.bytesWritten();
        FinalPositions indices;
        try {
            indices = backend.stopAndCollectPositions();
        } catch (Exception e) {
            throw new MigrationException("stopping the backend at stop-and-copy failed: " + e.getMessage(), e);
        }
        if (indices == null) {
            throw new MigrationException("the backend stop returned no indices");
        }
        backendStopNanos = System.nanoTime() - start;
        phase = Phase.FAILED; // until it completes
        List<Integer> sent;
        try {
            sent = sendChanged(StreamFormat.FLAG_DELTA | StreamFormat.FLAG_SWITCHOVER, false);
            int flags = StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA
                    | (sent.isEmpty() ? StreamFormat.FLAG_NO_DATA : 0);
            byte[] finalIndices = INDICES.encode(indices);
            // The source's part of the downtime ends as its final write begins: the destination
            // may read that write before the call returns here, so a mark taken after it could
            // fall after the destination's own marks.
            sentAt = MonotonicClock.now();
            // One write for both: the destination wakes once for the end of the switchover.
            out.writeLastSectionAndEnd(StreamFormat.QUEUE_INDICES, flags, finalIndices);
        } catch (IOException e) {
            throw MigrationPeerException.of(MigrationPhase.STOP_AND_COPY, peer, e);
        }
        phase = Phase.DONE;
        stopAndCopyNanos = MonotonicClock.now() - start;
        stopAndCopyBytes = out.bytesWritten() - bytesBefore;
        switchoverSections = sent.size();
        commit(event, MigrationPhaseEvent.STOP_AND_COPY, stopAndCopyBytes);
        return sent;
    }

    /**
     * Reads the destination's acknowledgement from the return path and records its timings.
     *
     * @throws MigrationException when the destination did not start (the caller resumes the
     *         guest here) or the answer is malformed
     * @throws MigrationPeerException (phase ACKNOWLEDGEMENT) when the return path failed, timed
     *         out or ended before the answer was complete
     */
    public void awaitAcknowledgement(MigrationStreamReader back) throws MigrationException {
        try {
            readAcknowledgement(back);
        } catch (MigrationStreamException e) {
            throw MigrationPeerException.ofStream(MigrationPhase.ACKNOWLEDGEMENT, peer, e, back);
        }
    }

    private void readAcknowledgement(MigrationStreamReader back) throws MigrationException {
        Section s = back.next();
        if (s.id() != StreamFormat.ACKNOWLEDGEMENT) {
            throw new MigrationStreamException("expected the acknowledgement", s.id(), back.nameOf(s.id()),
                    s.offset(), null);
        }
        Acknowledgement ack;
        try {
            ack = ACK.decode(s.payload());
        } catch (StateDecodeException e) {
            throw new MigrationStreamException(e.reason(), s.id(), back.nameOf(s.id()),
                    s.payloadOffset() + e.offset(), e.fieldPath(), e);
        }
        Section end = back.next();
        if (!end.isEndOfStream()) {
            throw new MigrationStreamException("expected the end marker after the acknowledgement", end.id(),
                    back.nameOf(end.id()), end.offset(), null);
        }
        destinationEarlyLoadNanos = ack.earlyLoadNanos();
        destinationSwitchoverNanos = ack.switchoverNanos();
        if (ack.started() && sentAt >= 0) {
            downtime = DeviceDowntime.of(pausedAt, sentAt, MonotonicClock.sameAs(ack.clockDomain()),
                    ack.firstFrameAt(), ack.switchoverMarks());
        }
        if (!ack.started()) {
            throw new MigrationException("the destination did not start: " + ack.failure());
        }
    }

    /** The figures so far. */
    public MigrationReport report() {
        return new MigrationReport(setupNanos, setupBytes, precopyMessages, precopyNanos, precopyBytes,
                stopAndCopyNanos, backendStopNanos, stopAndCopyBytes, switchoverSections, destinationEarlyLoadNanos,
                destinationSwitchoverNanos, downtime);
    }

    /** Ends and commits a phase event, when a recording wants it. */
    static void commit(MigrationPhaseEvent event, String phase, long bytes) {
        event.end();
        if (event.shouldCommit()) {
            event.phase = phase;
            event.bytes = bytes;
            event.commit();
        }
    }

    private void requirePhase(Phase expected, String what) {
        if (phase != expected) {
            throw new IllegalStateException(what + " is not allowed in phase " + phase);
        }
    }
}
