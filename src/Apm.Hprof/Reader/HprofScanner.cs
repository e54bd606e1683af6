using System.Runtime.CompilerServices;

namespace Apm.Hprof.Reader;

/// <summary>Which record kinds a scan reports; the rest are skipped by their lengths (cheaper, no allocation).</summary>
[Flags]
public enum HprofRecordKinds
{
    None = 0,
    Strings = 1,
    LoadClass = 2,
    StackTraces = 4,
    Roots = 8,
    ClassDumps = 16,
    Instances = 32,
    ObjectArrays = 64,
    PrimitiveArrays = 128,
    Objects = Instances | ObjectArrays | PrimitiveArrays,
    All = Strings | LoadClass | StackTraces | Roots | ClassDumps | Objects,
}

/// <summary>
/// Receives records from <see cref="HprofScanner.Scan{TVisitor}"/>. Offsets point into the mapped file so a
/// visitor can read bytes lazily. Implement as a struct so calls are direct in the hot loop.
/// </summary>
public interface IHprofVisitor
{
    void OnString(long id, long textOffset, int byteLength);

    void OnLoadClass(int classSerial, long classId, int stackSerial, long nameId);

    void OnFrame(long frameId, long methodNameId, long signatureId, long sourceFileId, int classSerial, int line);

    void OnTrace(int serial, int threadSerial, long frameIdsOffset, int frameCount);

    void OnRoot(HprofRootKind kind, long objectId, int threadSerial, int frameNumber);

    void OnClassDump(HprofClassDump dump);

    void OnInstance(long id, long classId, long recordOffset, long dataOffset, int dataLength);

    void OnObjectArray(long id, long arrayClassId, long recordOffset, long elementsOffset, int length);

    void OnPrimitiveArray(long id, HprofBasicType type, long recordOffset, long dataOffset, int length);
}

/// <summary>
/// Streams the records of an <see cref="HprofFile"/> in file order (the record-reader layer). Every length is
/// checked against the enclosing record, so damaged input ends in <see cref="HprofFormatException"/>, never in a
/// read outside the file or a loop that does not advance.
/// </summary>
public sealed class HprofScanner
{
    /// <summary>How much of the file behind the scan position stays mapped in (see <see cref="ReleaseBehind"/>).</summary>
    internal const long ResidentWindow = 8L << 20;

    private const int RecordHeaderSize = 9;
    private readonly HprofFile _file;
    private readonly int _idSize;
    private long _released;

    public HprofScanner(HprofFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        _file = file;
        _idSize = file.IdSize;
    }

    /// <summary>
    /// Reads the whole file once. <paramref name="progress"/> gets the offset reached about every 16 MiB; the
    /// token is checked at the same points. Cost: one sequential pass over the mapping.
    /// </summary>
    public void Scan<TVisitor>(ref TVisitor visitor, HprofRecordKinds kinds, Action<long>? progress = null, CancellationToken ct = default)
        where TVisitor : struct, IHprofVisitor
    {
        var state = new ScanState { PreviousTag = -1 };
        ScanRange(ref visitor, kinds, _file.HeaderLength, _file.Length, ref state, progress, ct);
        Finish(_file, state);
        progress?.Invoke(_file.Length);
    }

    /// <summary>What a scan of part of the file saw, for the checks at the end of the file (<see cref="Finish"/>).</summary>
    internal struct ScanState
    {
        public int PreviousTag;
        public bool SawHeapDump;
        public bool SawSegment;
        public bool SawEnd;

        /// <summary>The state after scanning <paramref name="first"/>'s range and then <paramref name="second"/>'s.</summary>
        public static ScanState Join(ScanState first, ScanState second) => new()
        {
            PreviousTag = second.PreviousTag,
            SawHeapDump = first.SawHeapDump || second.SawHeapDump,
            SawSegment = first.SawSegment || second.SawSegment,
            SawEnd = second.SawHeapDump ? second.SawEnd : first.SawEnd || second.SawEnd,
        };
    }

    /// <summary>
    /// The start of the first top-level record at or after <paramref name="target"/>, found by hopping over record
    /// lengths (a few thousand reads), and the tag of the record before it; the file's length when the records do
    /// not reach that far intact (the scan then reports the damage). For splitting a scan between threads.
    /// </summary>
    internal (long Offset, int PreviousTag) FindRecordBoundary(long target)
    {
        var f = _file;
        long pos = f.HeaderLength;
        int previousTag = -1;
        while (pos < target)
        {
            if (pos + RecordHeaderSize > f.Length) return (f.Length, -1);
            long end = pos + RecordHeaderSize + f.U4(pos + 5);
            if (end > f.Length) return (f.Length, -1);
            previousTag = f.U1(pos);
            pos = end;
        }

        return (pos, previousTag);
    }

    /// <summary>
    /// Reads the records in [<paramref name="from"/>, <paramref name="to"/>), which must start and end at record
    /// boundaries (<see cref="FindRecordBoundary"/>). Several scanners may scan disjoint ranges of one file at once.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    internal void ScanRange<TVisitor>(ref TVisitor visitor, HprofRecordKinds kinds, long from, long to, ref ScanState state, Action<long>? progress, CancellationToken ct)
        where TVisitor : struct, IHprofVisitor
    {
        var f = _file;
        long pos = from;
        long nextReport = pos + (16 << 20);
        _released = from;
        int previousTag = state.PreviousTag;
        bool sawHeapDump = state.SawHeapDump, sawSegment = state.SawSegment, sawEnd = state.SawEnd;
        while (pos < to)
        {
            if (pos >= nextReport)
            {
                ct.ThrowIfCancellationRequested();
                progress?.Invoke(pos);
                ReleaseBehind(pos);
                nextReport = pos + (16 << 20);
            }

            if (pos + RecordHeaderSize > f.Length)
                throw new HprofFormatException(HprofErrorKind.Truncated, pos, -1, "a record header is cut off");
            int tag = f.U1(pos);
            long length = f.U4(pos + 5);
            long body = pos + RecordHeaderSize;
            if (body + length > f.Length)
                throw new HprofFormatException(HprofErrorKind.Truncated, pos, tag, FormattableString.Invariant($"the record claims {length} bytes but only {f.Length - body} remain"));
            long end = body + length;
            switch (tag)
            {
                case HprofTag.Utf8:
                    Need(length >= _idSize, pos, tag, "string record shorter than an id");
                    if ((kinds & HprofRecordKinds.Strings) != 0) visitor.OnString(f.Id(body), body + _idSize, checked((int)(length - _idSize)));
                    break;
                case HprofTag.LoadClass:
                    Need(length == 8 + (2 * _idSize), pos, tag, "LOAD_CLASS has the wrong length");
                    if ((kinds & HprofRecordKinds.LoadClass) != 0)
                        visitor.OnLoadClass((int)f.U4(body), f.Id(body + 4), (int)f.U4(body + 4 + _idSize), f.Id(body + 8 + _idSize));
                    break;
                case HprofTag.Frame:
                    Need(length == 8 + (4 * _idSize), pos, tag, "FRAME has the wrong length");
                    if ((kinds & HprofRecordKinds.StackTraces) != 0)
                    {
                        long p = body;
                        visitor.OnFrame(f.Id(p), f.Id(p + _idSize), f.Id(p + (2 * _idSize)), f.Id(p + (3 * _idSize)), (int)f.U4(p + (4 * _idSize)), (int)f.U4(p + 4 + (4 * _idSize)));
                    }

                    break;
                case HprofTag.Trace:
                    {
                        Need(length >= 12, pos, tag, "TRACE is too short");
                        long frames = f.U4(body + 8);
                        Need(length == 12 + (frames * _idSize), pos, tag, "TRACE frame count does not match its length");
                        if ((kinds & HprofRecordKinds.StackTraces) != 0)
                            visitor.OnTrace((int)f.U4(body), (int)f.U4(body + 4), body + 12, (int)frames);
                        break;
                    }

                case HprofTag.HeapDump:
                case HprofTag.HeapDumpSegment:
                    sawHeapDump = true;
                    sawSegment |= tag == HprofTag.HeapDumpSegment;
                    sawEnd = false;
                    ScanHeapDump(ref visitor, kinds, body, end, ct);
                    break;
                case HprofTag.UnloadClass:
                case HprofTag.AllocSites:
                case HprofTag.HeapSummary:
                case HprofTag.StartThread:
                case HprofTag.EndThread:
                case HprofTag.CpuSamples:
                case HprofTag.ControlSettings:
                case HprofTag.HeapDumpEnd:
                    sawEnd = true;
                    break;
                default:
                    throw new HprofFormatException(HprofErrorKind.Corrupt, pos, tag, FormattableString.Invariant($"unknown record tag after a record with tag 0x{previousTag:X2}"));
            }

            previousTag = tag;
            pos = end;
        }

        state = new ScanState { PreviousTag = previousTag, SawHeapDump = sawHeapDump, SawSegment = sawSegment, SawEnd = sawEnd };
    }

    /// <summary>The checks at the end of the file, on the state of a scan of all of it.</summary>
    internal static void Finish(HprofFile f, ScanState state)
    {
        // A dump cut exactly at a record boundary still parses; HotSpot always writes a heap dump, and ends a
        // segmented one with HEAP_DUMP_END, so their absence means the file was cut.
        if (!state.SawHeapDump) throw new HprofFormatException(HprofErrorKind.Truncated, f.Length, -1, "the file ends before any heap dump record");
        if (state.SawSegment && !state.SawEnd) throw new HprofFormatException(HprofErrorKind.Truncated, f.Length, HprofTag.HeapDumpSegment, "the file ends without HEAP_DUMP_END");
    }

    /// <summary>
    /// Drops the mapped pages well behind the scan position from the resident set (they stay in the page cache), so
    /// a pass over a big dump keeps about <see cref="ResidentWindow"/> of it resident instead of all of it.
    /// </summary>
    private void ReleaseBehind(long pos)
    {
        long keepFrom = pos - ResidentWindow;
        if (keepFrom - _released < ResidentWindow) return;
        _file.ReleasePages(_released, keepFrom);
        _released = keepFrom;
    }

    private static void Need(bool condition, long offset, int tag, string reason)
    {
        if (!condition) throw new HprofFormatException(HprofErrorKind.Corrupt, offset, tag, reason);
    }

    [MethodImpl(HotLoop.Options)]
    private void ScanHeapDump<TVisitor>(ref TVisitor visitor, HprofRecordKinds kinds, long pos, long end, CancellationToken ct)
        where TVisitor : struct, IHprofVisitor
    {
        var f = _file;
        int id = _idSize;
        bool roots = (kinds & HprofRecordKinds.Roots) != 0;
        long nextCheck = pos + (16 << 20);
        while (pos < end)
        {
            if (pos >= nextCheck)
            {
                ct.ThrowIfCancellationRequested();
                ReleaseBehind(pos);
                nextCheck = pos + (16 << 20);
            }

            int tag = f.U1(pos);
            long p = pos + 1;
            switch (tag)
            {
                case HprofTag.InstanceDump:
                    {
                        Fits(p, (2 * id) + 8, end, pos, tag);
                        long dataLen = f.U4(p + id + 4 + id);
                        long data = p + (2 * id) + 8;
                        Fits(data, dataLen, end, pos, tag);
                        Need(dataLen <= int.MaxValue, pos, tag, "instance data too long");
                        if ((kinds & HprofRecordKinds.Instances) != 0)
                            visitor.OnInstance(f.Id(p), f.Id(p + id + 4), pos, data, (int)dataLen);
                        pos = data + dataLen;
                        continue;
                    }

                case HprofTag.ObjectArrayDump:
                    {
                        Fits(p, (2 * id) + 8, end, pos, tag);
                        long count = f.U4(p + id + 4);
                        Need(count <= int.MaxValue, pos, tag, "array length too large");
                        long data = p + (2 * id) + 8;
                        Fits(data, count * id, end, pos, tag);
                        if ((kinds & HprofRecordKinds.ObjectArrays) != 0)
                            visitor.OnObjectArray(f.Id(p), f.Id(p + id + 8), pos, data, (int)count);
                        pos = data + (count * id);
                        continue;
                    }

                case HprofTag.PrimitiveArrayDump:
                case HprofTag.PrimitiveArrayNoData:
                    {
                        Fits(p, id + 9, end, pos, tag);
                        long count = f.U4(p + id + 4);
                        Need(count <= int.MaxValue, pos, tag, "array length too large");
                        var type = (HprofBasicType)f.U1(p + id + 8);
                        int size = HprofTypes.SizeOf(type, id);
                        if (size == 0 || type == HprofBasicType.Object)
                            throw new HprofFormatException(HprofErrorKind.Corrupt, pos, tag, FormattableString.Invariant($"invalid primitive array element type {(int)type}"));
                        long data = p + id + 9;
                        long bytes = tag == HprofTag.PrimitiveArrayDump ? count * size : 0;
                        Fits(data, bytes, end, pos, tag);
                        if ((kinds & HprofRecordKinds.PrimitiveArrays) != 0)
                            visitor.OnPrimitiveArray(f.Id(p), type, pos, data, (int)count);
                        pos = data + bytes;
                        continue;
                    }

                case HprofTag.ClassDump:
                    pos = ReadClassDump(ref visitor, (kinds & HprofRecordKinds.ClassDumps) != 0, pos, end);
                    continue;
                case (int)HprofRootKind.Unknown:
                case (int)HprofRootKind.StickyClass:
                case (int)HprofRootKind.MonitorUsed:
                case (int)HprofRootKind.InternedString:
                case (int)HprofRootKind.Finalizing:
                case (int)HprofRootKind.Debugger:
                case (int)HprofRootKind.ReferenceCleanup:
                case (int)HprofRootKind.VmInternal:
                case (int)HprofRootKind.Unreachable:
                    Fits(p, id, end, pos, tag);
                    if (roots) visitor.OnRoot((HprofRootKind)tag, f.Id(p), 0, 0);
                    pos = p + id;
                    continue;
                case (int)HprofRootKind.JniGlobal:
                    Fits(p, 2 * id, end, pos, tag);
                    if (roots) visitor.OnRoot(HprofRootKind.JniGlobal, f.Id(p), 0, 0);
                    pos = p + (2 * id);
                    continue;
                case (int)HprofRootKind.JniLocal:
                case (int)HprofRootKind.JavaFrame:
                case (int)HprofRootKind.JniMonitor:
                case (int)HprofRootKind.ThreadObject:
                    Fits(p, id + 8, end, pos, tag);
                    if (roots) visitor.OnRoot((HprofRootKind)tag, f.Id(p), (int)f.U4(p + id), (int)f.U4(p + id + 4));
                    pos = p + id + 8;
                    continue;
                case (int)HprofRootKind.NativeStack:
                case (int)HprofRootKind.ThreadBlock:
                    Fits(p, id + 4, end, pos, tag);
                    if (roots) visitor.OnRoot((HprofRootKind)tag, f.Id(p), (int)f.U4(p + id), 0);
                    pos = p + id + 4;
                    continue;
                case HprofTag.HeapDumpInfo:
                    Fits(p, 4 + id, end, pos, tag);
                    pos = p + 4 + id;
                    continue;
                default:
                    throw new HprofFormatException(HprofErrorKind.Corrupt, pos, tag, "unknown heap dump sub-record tag");
            }
        }
    }

    private static void Fits(long start, long count, long end, long recordOffset, int tag)
    {
        if (count < 0 || start + count > end)
            throw new HprofFormatException(HprofErrorKind.Corrupt, recordOffset, tag, "the sub-record runs past the end of its heap dump segment");
    }

    private long ReadClassDump<TVisitor>(ref TVisitor visitor, bool wanted, long pos, long end)
        where TVisitor : struct, IHprofVisitor
    {
        const int tag = HprofTag.ClassDump;
        var f = _file;
        int id = _idSize;
        long p = pos + 1;
        Fits(p, (7 * id) + 10, end, pos, tag);
        long classId = f.Id(p);
        long superId = f.Id(p + id + 4);
        long loaderId = f.Id(p + (2 * id) + 4);
        int instanceSize = (int)f.U4(p + (7 * id) + 4);
        p += (7 * id) + 8;
        int cpCount = f.U2(p);
        p += 2;
        for (int i = 0; i < cpCount; i++)
        {
            Fits(p, 3, end, pos, tag);
            p = SkipValue(p + 3, (HprofBasicType)f.U1(p + 2), end, pos);
        }

        Fits(p, 2, end, pos, tag);
        int staticCount = f.U2(p);
        p += 2;
        var statics = wanted ? new HprofStaticField[staticCount] : null;
        for (int i = 0; i < staticCount; i++)
        {
            Fits(p, id + 1, end, pos, tag);
            var type = (HprofBasicType)f.U1(p + id);
            long valueAt = p + id + 1;
            long next = SkipValue(valueAt, type, end, pos);
            if (statics != null) statics[i] = new HprofStaticField(f.Id(p), type, f.Value(valueAt, type));
            p = next;
        }

        Fits(p, 2, end, pos, tag);
        int fieldCount = f.U2(p);
        p += 2;
        Fits(p, (long)fieldCount * (id + 1), end, pos, tag);
        var fields = wanted ? new HprofFieldDecl[fieldCount] : null;
        for (int i = 0; i < fieldCount; i++)
        {
            var type = (HprofBasicType)f.U1(p + id);
            if (HprofTypes.SizeOf(type, id) == 0)
                throw new HprofFormatException(HprofErrorKind.Corrupt, pos, tag, FormattableString.Invariant($"invalid field type {(int)type}"));
            if (fields != null) fields[i] = new HprofFieldDecl(f.Id(p), type);
            p += id + 1;
        }

        if (wanted) visitor.OnClassDump(new HprofClassDump(classId, superId, loaderId, instanceSize, pos, statics!, fields!));
        return p;
    }

    private long SkipValue(long p, HprofBasicType type, long end, long recordOffset)
    {
        int size = HprofTypes.SizeOf(type, _idSize);
        if (size == 0)
            throw new HprofFormatException(HprofErrorKind.Corrupt, recordOffset, HprofTag.ClassDump, FormattableString.Invariant($"invalid value type {(int)type}"));
        Fits(p, size, end, recordOffset, HprofTag.ClassDump);
        return p + size;
    }
}
