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
import io.vhostffm.vring.QueuePosition;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ReadableByteChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The receiving end of an early migration, generic over the registered state sections. Reads
 * the whole stream with {@link #receive}, checking the order of the protocol as strictly as
 * the reader checks the bytes:
 *
 * <pre>
 * setup      MANIFEST(INIT_STATE)  section(INIT_STATE)... the last with END_OF_DATA
 * precopy    ( section(DELTA)... the last with END_OF_DATA )*
 * switchover section(DELTA|SWITCHOVER)*  QUEUE_INDICES(SWITCHOVER|END_OF_DATA[|NO_DATA])
 * end        END_OF_STREAM
 * </pre>
 *
 * NO_DATA is set exactly when no section precedes the indices in the switchover. Every state
 * section appears once in the setup. The early state is loaded when the setup message is
 * complete, a precopy delta batch is applied when its END_OF_DATA arrives, and nothing of the
 * switchover is applied before the end marker validated: a truncated or corrupt switchover
 * leaves the device unstarted, and the source keeps the guest.
 */
public final class MigrationDestination {
    private static final StateSchema<Manifest> MANIFEST = StateSchema.of(Manifest.class);
    private static final StateSchema<FinalPositions> INDICES = StateSchema.of(FinalPositions.class);
    private static final StateSchema<Acknowledgement> ACK = StateSchema.of(Acknowledgement.class);

    /**
     * The system property that sets how often the destination rehearses its switchover during the
     * early load (0 turns it off; default 200): here the switchover's read, in the network
     * device's destination its quickstart too; and how often a network device's source rehearses
     * its stop-and-copy ({@code NetMigrationSource.rehearseStopAndCopy}).
     */
    public static final String REHEARSALS_PROPERTY = "io.vhostffm.migration.rehearsals";

    /**
     * The system property that bounds, in milliseconds, the wait after the rehearsals for the JIT
     * compiler to finish what they queued (default 500; 0 turns the wait off): see
     * {@link CompilerSettle}.
     */
    public static final String COMPILER_SETTLE_PROPERTY = "io.vhostffm.migration.compilerSettleMillis";

    private final List<RegisteredSection<?>> sections;
    private final Map<Integer, RegisteredSection<?>> byId = new HashMap<>();
    private final Map<Integer, String> names = new HashMap<>();
    private final DeviceSwitchover device;
    private volatile Runnable afterEarlyLoad = () -> {};
    private volatile MigrationPhase phase = MigrationPhase.SETUP;
    private volatile java.util.function.Consumer<MigrationPhase> phaseListener = p -> {};
    private volatile String peer = "the source";
    private volatile java.util.function.Supplier<RehearsalLoop> rehearsalLoop;

    /**
     * @param sections the device's state sections; must match the source's manifest
     * @param device the device's switchover step
     */
    public MigrationDestination(List<? extends DeviceStateSection<?>> sections, DeviceSwitchover device) {
        this.sections = RegisteredSection.register(sections);
        for (RegisteredSection<?> s : this.sections) {
            byId.put(s.id, s);
            names.put(s.id, s.name);
        }
        this.device = device;
    }

    /**
     * Runs on the reading thread once the setup state is loaded early (the device prestarted),
     * before the precopy deltas are read: the moment a destination can tell the source it is
     * ready for the switchover. A failure fails the migration.
     */
    public void setAfterEarlyLoad(Runnable hook) {
        this.afterEarlyLoad = java.util.Objects.requireNonNull(hook, "hook");
    }

    /**
     * Where {@link #receive} is (any thread may ask): SETUP until the early state is loaded,
     * PRECOPY until the first switchover frame, STOP_AND_COPY until the stream validated, then
     * ACKNOWLEDGEMENT while the device switches over. A failure of the source or the connection
     * is named by this phase.
     */
    public MigrationPhase phase() {
        return phase;
    }

    /**
     * {@code listener} is told each phase {@link #receive} enters, on the receiving thread, before
     * it reads on (a hypervisor's progress report; the fault tests' event to act on).
     */
    public void setPhaseListener(java.util.function.Consumer<MigrationPhase> listener) {
        this.phaseListener = java.util.Objects.requireNonNull(listener, "listener");
    }

    /**
     * Where the rehearsals of the switchover's read (during the early load, {@link #rehearsals()}
     * times) read their stream: without a loop, from the bytes in memory, which runs the stream
     * reader and the decoders but not the connection's own read path; with one (opened before the
     * rehearsals, closed after them), each rehearsal writes the stream into the loop and reads it
     * back, so a fresh destination's first switchover read does not run that path's code for the
     * first time inside the downtime. The demo gives {@code UnixSocketChannel::loop}.
     */
    public void setRehearsalLoop(java.util.function.Supplier<RehearsalLoop> opener) {
        this.rehearsalLoop = java.util.Objects.requireNonNull(opener, "opener");
    }

    /** Who the source is, in words, for {@link MigrationPeerException}s (default "the source"). */
    public void setPeer(String words) {
        this.peer = java.util.Objects.requireNonNull(words, "words");
    }

    private void enter(MigrationPhase next) {
        phase = next;
        phaseListener.accept(next);
    }

    /** A reader over {@code in} that accepts exactly this destination's sections. */
    public MigrationStreamReader reader(ReadableByteChannel in) {
        return new MigrationStreamReader(in, names);
    }

    /** As {@link #reader(ReadableByteChannel)}, with another upper bound of a section's payload. */
    public MigrationStreamReader reader(ReadableByteChannel in, int maxPayload) {
        return new MigrationStreamReader(in, names, maxPayload);
    }

    /**
     * Reads a whole migration stream and starts the device. Not reentrant: one stream at a time.
     *
     * @throws MigrationPeerException when the source or the connection failed: a read that failed
     *     or timed out, or the end of the channel before the end marker; names the phase it was in,
     *     its cause the stream's failure (section and byte offset). Nothing of the switchover was
     *     applied
     * @throws MigrationStreamException for any malformed or out-of-order stream
     * @throws MigrationException when the device fails at the switchover
     */
    public ReceivedMigration receive(MigrationStreamReader in) throws MigrationException {
        try {
            return new Reception(in).run();
        } catch (MigrationStreamException e) {
            throw MigrationPeerException.ofStream(phase, peer, e, in);
        }
    }

    /** The state of one {@link #receive}: what arrived so far, phase by phase. */
    private final class Reception {
        private final MigrationStreamReader in;
        /** Per section id, the newest state received and applied (setup or precopy). */
        private final Map<Integer, Record> current = new LinkedHashMap<>();
        private final List<String> earlyFailures = new ArrayList<>();
        private final List<SectionDelta> precopy = new ArrayList<>();
        private Map<Integer, Record> early;
        private long earlyLoadNanos;

        Reception(MigrationStreamReader in) {
            this.in = in;
        }

        ReceivedMigration run() throws MigrationException {
            enter(MigrationPhase.SETUP);
            readManifest();
            readSetup();
            MigrationPhaseEvent earlyEvent = new MigrationPhaseEvent();
            earlyEvent.begin();
            loadEarly();
            rehearseSwitchoverRead();
            settleCompiler();
            MigrationSource.commit(earlyEvent, MigrationPhaseEvent.EARLY_LOAD, in.offset());
            try {
                afterEarlyLoad.run(); // e.g. tell the source the switchover may come: nothing is loading any more
            } catch (RuntimeException e) {
                throw new MigrationException("after the early load: " + e.getMessage(), e);
            }
            enter(MigrationPhase.PRECOPY);
            Section first = readPrecopy();
            enter(MigrationPhase.STOP_AND_COPY);
            MigrationPhaseEvent switchoverEvent = new MigrationPhaseEvent();
            switchoverEvent.begin();
            long switchoverStart = MonotonicClock.now(); // the guest is paused at the source from here on
            SwitchoverSteps steps = new SwitchoverSteps();
            steps.firstFrame(switchoverStart);
            Map<Integer, Record> switchoverBatch = new LinkedHashMap<>();
            FinalPositions indices = readSwitchover(first, switchoverBatch);
            steps.mark(SwitchoverSteps.STREAM);
            enter(MigrationPhase.ACKNOWLEDGEMENT);
            Switchover switchover = applySwitchover(switchoverBatch, indices, steps);
            if (steps.count() == 1) {
                steps.mark(SwitchoverSteps.DEVICE_START);
            }
            long switchoverNanos = MonotonicClock.now() - switchoverStart;
            MigrationSource.commit(switchoverEvent, MigrationPhaseEvent.SWITCHOVER, in.offset());
            return new ReceivedMigration(early, precopy, switchover, earlyLoadNanos, switchoverNanos, in.offset(),
                    switchoverStart, steps.marks());
        }

        private void readManifest() throws MigrationStreamException {
            Section s = in.next();
            if (s.id() != StreamFormat.MANIFEST || s.flags() != StreamFormat.FLAG_INIT_STATE) {
                throw violation(in, s, "the stream must begin with the manifest, flagged INIT_STATE");
            }
            checkManifest(in, s, decode(in, s, MANIFEST));
        }

        /** INIT_STATE sections until END_OF_DATA; every registered section exactly once. */
        private void readSetup() throws MigrationStreamException {
            while (true) {
                Section s = in.next();
                int flags = s.flags() & ~StreamFormat.FLAG_END_OF_DATA;
                if (!StreamFormat.isDeviceSection(s.id()) || flags != StreamFormat.FLAG_INIT_STATE) {
                    throw violation(in, s, "the setup phase allows only state sections flagged INIT_STATE");
                }
                if (current.containsKey(s.id())) {
                    throw violation(in, s, "section sent twice in the setup phase");
                }
                long decodeStart = System.nanoTime(); // count the work, not the wait for bytes
                current.put(s.id(), decode(in, s, byId.get(s.id()).schema));
                earlyLoadNanos += System.nanoTime() - decodeStart;
                if (s.has(StreamFormat.FLAG_END_OF_DATA)) {
                    if (current.size() != sections.size()) {
                        throw violation(in, s, "setup ended without the state of " + missing(current.keySet()));
                    }
                    early = Map.copyOf(current);
                    return;
                }
            }
        }

        /** Early load of every section; a failure is recorded for the switchover, not fatal. */
        private void loadEarly() {
            long loadStart = System.nanoTime();
            for (RegisteredSection<?> r : sections) {
                try {
                    r.loadEarly(early.get(r.id));
                } catch (Exception e) {
                    earlyFailures.add("early load of '" + r.name + "' failed: " + e);
                }
            }
            earlyLoadNanos += System.nanoTime() - loadStart;
        }

        /**
         * DELTA messages until the first SWITCHOVER frame, which it returns. Each message is
         * applied when its END_OF_DATA arrives, never in part.
         */
        private Section readPrecopy() throws MigrationStreamException {
            Map<Integer, Record> batch = new LinkedHashMap<>();
            Section s = in.next();
            while (!s.has(StreamFormat.FLAG_SWITCHOVER)) {
                int flags = s.flags() & ~StreamFormat.FLAG_END_OF_DATA;
                if (!StreamFormat.isDeviceSection(s.id()) || flags != StreamFormat.FLAG_DELTA) {
                    throw violation(in, s, "precopy allows only state sections flagged DELTA");
                }
                if (batch.containsKey(s.id())) {
                    throw violation(in, s, "section sent twice in one precopy delta");
                }
                batch.put(s.id(), decode(in, s, byId.get(s.id()).schema));
                if (s.has(StreamFormat.FLAG_END_OF_DATA)) {
                    applyPrecopy(batch);
                    batch.clear();
                }
                s = in.next();
            }
            if (!batch.isEmpty()) {
                throw violation(in, s, "switchover began inside an unfinished precopy delta");
            }
            return s;
        }

        private void applyPrecopy(Map<Integer, Record> batch) {
            for (Map.Entry<Integer, Record> e : batch.entrySet()) {
                RegisteredSection<?> r = byId.get(e.getKey());
                SectionDelta d = delta(r, current.get(r.id), e.getValue(), false);
                precopy.add(d);
                current.put(r.id, e.getValue());
                if (d.changedFields().isEmpty()) {
                    continue;
                }
                try {
                    r.applyDelta(d.previous(), d.now(), d.changedFields(), false);
                } catch (Exception ex) {
                    earlyFailures.add("precopy delta of '" + r.name + "' failed: " + ex);
                }
            }
        }

        /**
         * DELTA|SWITCHOVER sections into {@code batch}, then QUEUE_INDICES, then the end marker;
         * nothing applied yet.
         */
        private FinalPositions readSwitchover(Section first, Map<Integer, Record> batch) throws MigrationStreamException {
            return readSwitchover(in, first, batch);
        }

        /** After the rehearsals: their compilations finish now, not inside the downtime. */
        private void settleCompiler() {
            if (rehearsals() > 0) {
                long waited = CompilerSettle.await(compilerSettle());
                System.getLogger(MigrationDestination.class.getName()).log(System.Logger.Level.DEBUG,
                        "migration: waited " + waited + " ms for the rehearsals' compilations");
            }
        }

        /**
         * Reads a switchover without a delta through the same code the real one takes ({@link
         * #readSwitchover(MigrationStreamReader, Section, Map)}, the stream reader's framing and
         * checksum, the indices' decoder) as many times as the system property {@value
         * MigrationDestination#REHEARSALS_PROPERTY} says, over a stream held in memory, or written into
         * the {@link #setRehearsalLoop rehearsal loop} and read back through the connection's own
         * kind of channel: the first switchover a fresh destination process reads then runs
         * compiled code, not the interpreter. Inside the early load, before the source is told it
         * may pause; it touches no connection, no section and no device. A rehearsal that fails
         * is logged and changes nothing.
         */
        private void rehearseSwitchoverRead() {
            int times = rehearsals();
            if (times <= 0) {
                return;
            }
            java.util.function.Supplier<RehearsalLoop> opener = rehearsalLoop;
            try (RehearsalLoop loop = opener == null ? null : opener.get()) {
                byte[] stream = rehearsalStream();
                for (int i = 0; i < times; i++) {
                    MigrationStreamReader r;
                    if (loop == null) {
                        r = MigrationStreamReader.over(new ByteArrayInputStream(stream), names);
                    } else {
                        ByteBuffer bytes = ByteBuffer.wrap(stream);
                        while (bytes.hasRemaining()) {
                            loop.writer().write(bytes);
                        }
                        r = new MigrationStreamReader(loop.reader(), names);
                    }
                    // The switchover's clock and step marks too: the clock's first use reads this
                    // process's clock domain from /proc, the first mark loads its event class.
                    SwitchoverSteps steps = SwitchoverSteps.rehearsal();
                    steps.firstFrame(MonotonicClock.now());
                    readSwitchover(r, r.next(), new LinkedHashMap<>());
                    steps.mark(SwitchoverSteps.STREAM);
                }
            } catch (IOException | MigrationStreamException | RuntimeException e) {
                System.getLogger(MigrationDestination.class.getName()).log(System.Logger.Level.INFO,
                        "migration: the switchover read's rehearsal failed (the switchover is unaffected): " + e);
            }
        }

        private FinalPositions readSwitchover(MigrationStreamReader in, Section first, Map<Integer, Record> batch)
                throws MigrationStreamException {
            Section s = first;
            while (s.id() != StreamFormat.QUEUE_INDICES) {
                if (!StreamFormat.isDeviceSection(s.id())
                        || s.flags() != (StreamFormat.FLAG_DELTA | StreamFormat.FLAG_SWITCHOVER)) {
                    throw violation(in, s, "the switchover allows state sections flagged DELTA|SWITCHOVER, "
                            + "then the queue indices");
                }
                if (batch.containsKey(s.id())) {
                    throw violation(in, s, "section sent twice in the switchover");
                }
                batch.put(s.id(), decode(in, s, byId.get(s.id()).schema));
                s = in.next();
            }
            int expectedFlags = StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA
                    | (batch.isEmpty() ? StreamFormat.FLAG_NO_DATA : 0);
            if (s.flags() != expectedFlags) {
                throw violation(in, s, "queue indices must be flagged " + StreamFormat.flagNames(expectedFlags)
                        + " after " + batch.size() + " switchover sections");
            }
            FinalPositions indices = decode(in, s, INDICES);
            Section end = in.next();
            if (!end.isEndOfStream()) {
                throw violation(in, end, "expected the end marker after the queue indices");
            }
            return indices;
        }

        /** The stream is complete and valid: apply the switchover deltas, then start the device. */
        private Switchover applySwitchover(Map<Integer, Record> batch, FinalPositions indices, SwitchoverSteps steps)
                throws MigrationException {
            List<SectionDelta> deltas = new ArrayList<>();
            for (Map.Entry<Integer, Record> e : batch.entrySet()) {
                RegisteredSection<?> r = byId.get(e.getKey());
                SectionDelta d = delta(r, current.get(r.id), e.getValue(), true);
                deltas.add(d);
                current.put(r.id, e.getValue());
                if (d.changedFields().isEmpty()) {
                    continue;
                }
                try {
                    r.applyDelta(d.previous(), d.now(), d.changedFields(), true);
                } catch (Exception ex) {
                    throw new MigrationException("switchover delta of section '" + r.name + "' failed: " + ex, ex);
                }
            }
            Map<Integer, List<String>> sinceEarly = new HashMap<>();
            for (RegisteredSection<?> r : sections) {
                List<String> changed = r.changedFields(early.get(r.id), current.get(r.id));
                if (!changed.isEmpty()) {
                    sinceEarly.put(r.id, changed);
                }
            }
            Switchover switchover = new Switchover(batch.isEmpty(), deltas, sinceEarly, indices, early, current,
                    earlyFailures, steps);
            try {
                device.switchover(switchover);
            } catch (Exception e) {
                throw new MigrationException("the device failed to start at the switchover: " + e, e);
            }
            return switchover;
        }
    }

    private static SectionDelta delta(RegisteredSection<?> r, Record previous, Record now, boolean atSwitchover) {
        return new SectionDelta(r.id, r.name, previous, now, r.changedFields(previous, now), atSwitchover);
    }

    private void checkManifest(MigrationStreamReader in, Section s, Manifest manifest) throws MigrationStreamException {
        Set<Integer> seen = new HashSet<>();
        for (Manifest.Entry e : manifest.sections()) {
            RegisteredSection<?> r = byId.get(e.id());
            if (r == null) {
                throw violation(in, s, String.format("the source sends section 0x%04x '%s', unknown here",
                        e.id(), e.name()));
            }
            if (!seen.add(e.id())) {
                throw violation(in, s, String.format("manifest lists section 0x%04x twice", e.id()));
            }
            if (!e.name().equals(r.name)) {
                throw violation(in, s, String.format("section 0x%04x is '%s' at the source and '%s' here",
                        e.id(), e.name(), r.name));
            }
            if (e.fingerprint() != r.schema.fingerprint()) {
                throw violation(in, s, String.format("section 0x%04x '%s' has another shape at the source "
                        + "(fingerprint %016x, here %016x: %s)", e.id(), r.name, e.fingerprint(),
                        r.schema.fingerprint(), r.schema.description()));
            }
        }
        if (seen.size() != sections.size()) {
            throw violation(in, s, "the source does not send " + missing(seen));
        }
    }

    private String missing(Set<Integer> present) {
        List<String> missing = new ArrayList<>();
        for (RegisteredSection<?> r : sections) {
            if (!present.contains(r.id)) {
                missing.add(String.format("0x%04x '%s'", r.id, r.name));
            }
        }
        return String.join(", ", missing);
    }

    private static MigrationStreamException violation(MigrationStreamReader in, Section s, String reason) {
        return new MigrationStreamException("protocol violation: " + reason + ", got flags "
                + StreamFormat.flagNames(s.flags()), s.id(), in.nameOf(s.id()), s.offset(), null);
    }

    /**
     * The longest wait for the rehearsals' compilations, from {@value #COMPILER_SETTLE_PROPERTY}
     * (default 500 ms), read at each call: for a source's or a hypervisor's own rehearsals too.
     */
    public static Duration compilerSettle() {
        return Duration.ofMillis(Math.max(0, Long.getLong(COMPILER_SETTLE_PROPERTY, 500)));
    }

    /**
     * How often a switchover (or a source's stop-and-copy) is rehearsed, from {@value
     * #REHEARSALS_PROPERTY} (default 200), read at each call (a test may change it).
     */
    public static int rehearsals() {
        return Integer.getInteger(REHEARSALS_PROPERTY, 200);
    }

    /**
     * A switchover without a delta as a source writes it, held in memory: the stream header,
     * queue indices flagged NO_DATA | SWITCHOVER | END_OF_DATA, the end marker. The positions
     * are arbitrary (two queues, split and packed); the decoder runs the same code for any.
     */
    private static byte[] rehearsalStream() throws IOException {
        FinalPositions positions = new FinalPositions(List.of(
                new FinalPositions.Entry(0, QueuePosition.split(0, 0, 0)),
                new FinalPositions.Entry(1, QueuePosition.packed(0, true, 0, true, 0))));
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        MigrationStreamWriter w = MigrationStreamWriter.over(bytes);
        w.writeLastSectionAndEnd(StreamFormat.QUEUE_INDICES,
                StreamFormat.FLAG_NO_DATA | StreamFormat.FLAG_SWITCHOVER | StreamFormat.FLAG_END_OF_DATA,
                INDICES.encode(positions));
        return bytes.toByteArray();
    }

    private static <R extends Record> R decode(MigrationStreamReader in, Section s, StateSchema<R> schema)
            throws MigrationStreamException {
        try {
            return schema.decode(s.payload());
        } catch (StateDecodeException e) {
            throw new MigrationStreamException(e.reason(), s.id(), in.nameOf(s.id()), s.payloadOffset() + e.offset(),
                    e.fieldPath(), e);
        }
    }

    /**
     * Sends the positive acknowledgement, with the destination's timings, on the return path.
     *
     * @throws MigrationPeerException (phase ACKNOWLEDGEMENT) when the source or the connection
     *     failed: the source cannot have the answer, and keeps the guest unless a commit of the
     *     caller's own already gave it away
     */
    public static void acknowledge(MigrationStreamWriter back, ReceivedMigration received) throws MigrationException {
        writeAck(back, new Acknowledgement(true, "", received.earlyLoadNanos(), received.switchoverNanos(),
                received.bytesReceived(), MonotonicClock.domain(), received.firstFrameAt(), received.switchoverMarks()));
    }

    /**
     * Sends a negative acknowledgement: the source keeps the guest.
     *
     * @throws MigrationPeerException (phase ACKNOWLEDGEMENT) when the source or the connection failed
     */
    public static void acknowledgeFailure(MigrationStreamWriter back, MigrationException failure)
            throws MigrationException {
        String reason = failure.getMessage() == null ? failure.toString() : failure.getMessage();
        writeAck(back, new Acknowledgement(false, reason, -1, -1, -1, MonotonicClock.domain(), -1, List.of()));
    }

    private static void writeAck(MigrationStreamWriter back, Acknowledgement ack) throws MigrationException {
        try {
            back.writeLastSectionAndEnd(StreamFormat.ACKNOWLEDGEMENT, StreamFormat.FLAG_END_OF_DATA, ACK.encode(ack));
        } catch (IOException e) {
            throw MigrationPeerException.of(MigrationPhase.ACKNOWLEDGEMENT, "the source", e);
        }
    }
}
