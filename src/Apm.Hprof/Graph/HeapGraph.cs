using System.Runtime.CompilerServices;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Graph;

/// <summary>What an object record is.</summary>
public enum HeapObjectKind : byte
{
    Instance = 1,
    ObjectArray = 2,
    PrimitiveArray = 3,
    Class = 4,
}

/// <summary>A GC root: the object, its kind, and the thread it belongs to (serial, 0 when none).</summary>
public readonly record struct HeapRoot(int Object, HprofRootKind Kind, int ThreadSerial, int FrameNumber);

/// <summary>A frame of a thread's stack trace, decoded from FRAME records.</summary>
public readonly record struct HeapFrame(string Method, string ClassName, string SourceFile, int Line);

/// <summary>
/// The object-graph index (the layer between records and analyses). Objects are dense indices 0..N-1 in
/// ascending id order; per-object data lives in primitive arrays (about 33 bytes per object plus 4 per
/// reference and 8 per java.lang.ref.Reference), never in an object per heap object. Outgoing strong references
/// are a CSR array that excludes Reference.referent; <see cref="GetReferent"/> returns that edge from a side table.
/// Reads after construction are thread-safe. Disposing unmaps the file.
/// </summary>
public sealed partial class HeapGraph : IDisposable
{
    private readonly long[] _ids;
    private readonly IdLookup _lookup;
    private readonly long[] _offsets;
    private readonly int[] _classOf;
    private readonly byte[] _kind;
    private readonly int[] _shallow;
    private readonly int[] _refStart;
    private readonly int[] _refs;
    private readonly int[] _referenceObjects;
    private readonly int[] _referents;
    private readonly HeapClass[] _classes;
    private readonly Dictionary<string, int> _classByName;
    private readonly Dictionary<long, int> _classById;
    private readonly Dictionary<long, (long Offset, int Length)> _strings;
    private readonly Dictionary<int, int> _threadObjectBySerial;
    private readonly Dictionary<int, int> _threadTraceBySerial;
    private readonly Dictionary<int, long[]> _traces;
    private readonly Dictionary<long, (long Method, long Source, int ClassSerial, int Line)> _frames;
    private readonly Dictionary<int, long> _classIdBySerial;

    internal HeapGraph(HprofFile file, Builder b)
    {
        File = file;
        _ids = b.Ids;
        _lookup = b.Lookup ?? new IdLookup(b.Ids);
        _offsets = b.Offsets;
        _classOf = b.ClassOf;
        _kind = b.Kind;
        _shallow = b.Shallow;
        _refStart = b.RefStart;
        _refs = b.Refs;
        _referenceObjects = b.ReferenceObjects;
        _referents = b.Referents;
        _classes = b.Classes;
        _classByName = b.ClassByName;
        _classById = b.ClassById;
        _strings = b.Strings;
        Roots = b.Roots;
        _threadObjectBySerial = b.ThreadObjectBySerial;
        _threadTraceBySerial = b.ThreadTraceBySerial;
        _traces = b.Traces;
        _frames = b.Frames;
        _classIdBySerial = b.ClassIdBySerial;
        DanglingReferences = b.Dangling;
        ObjectCount = _ids.Length;
        ReferenceCount = b.RefCount;
    }

    /// <summary>The mapped file; object data is read from it lazily.</summary>
    public HprofFile File { get; }

    public int ObjectCount { get; }

    /// <summary>Number of strong edges in the CSR (referents excluded).</summary>
    public long ReferenceCount { get; }

    /// <summary>References to ids that have no record in the dump (skipped, counted).</summary>
    public long DanglingReferences { get; }

    public IReadOnlyList<HeapClass> Classes => _classes;

    /// <summary>Every GC root record whose object is in the dump (duplicates kept: one object may be several roots).</summary>
    public IReadOnlyList<HeapRoot> Roots { get; }

    /// <summary>Builds the index from a mapped file; see <see cref="HeapGraphBuilder"/>.</summary>
    public static HeapGraph Build(HprofFile file, Action<string, double>? progress = null, CancellationToken ct = default) =>
        HeapGraphBuilder.Build(file, progress, ct);

    public void Dispose() => File.Dispose();

    /// <summary>
    /// Drops the dump's mapped pages from this process's resident set (they stay in the page cache; later reads
    /// map them again). Loops that read many scattered objects call it now and then to keep memory bounded.
    /// </summary>
    public void TrimResidentPages() => File.ReleasePages(0, File.Length);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long GetId(int obj) => _ids[obj];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public HeapObjectKind GetKind(int obj) => (HeapObjectKind)_kind[obj];

    /// <summary>Class of the object; for class objects, the class they describe is <see cref="GetDescribedClass"/>.</summary>
    public HeapClass GetClass(int obj) => _classes[_classOf[obj]];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetClassIndex(int obj) => _classOf[obj];

    /// <summary>For a class object, the class it stands for; null otherwise. Cost: a dictionary lookup.</summary>
    public HeapClass? GetDescribedClass(int obj) =>
        _kind[obj] == (byte)HeapObjectKind.Class && _classById.TryGetValue(_ids[obj], out var c) ? _classes[c] : null;

    /// <summary>Every object's shallow size, by dense index (for algorithms that want the array; do not modify).</summary>
    internal int[] ShallowSizes => _shallow;

    /// <summary>Shallow size in bytes (the JVM's size of the object, as VisualVM counts it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetShallowSize(int obj) => _shallow[obj];

    /// <summary>Record offset in the file.</summary>
    public long GetOffset(int obj) => _offsets[obj];

    /// <summary>Dense index of an object id, or -1. Cost: a bucket lookup and a short binary search.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int FindObjectIndexOrNone(long id) => _lookup.Find(id);

    /// <summary>Dense index of an object id; throws <see cref="KeyNotFoundException"/> when absent.</summary>
    public int FindObjectIndex(long id)
    {
        var i = FindObjectIndexOrNone(id);
        return i >= 0 ? i : throw new KeyNotFoundException(FormattableString.Invariant($"no object with id 0x{id:X} in the dump"));
    }

    /// <summary>Outgoing strong references of an object (dense indices), without Reference.referent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ReadOnlySpan<int> GetReferences(int obj) => _refs.AsSpan(_refStart[obj], _refStart[obj + 1] - _refStart[obj]);

    /// <summary>The CSR arrays (start offsets, N+1 long; targets) for algorithms that want raw access.</summary>
    internal (int[] Start, int[] Targets) Csr => (_refStart, _refs);

    /// <summary>A class by Java name ("java.util.TimerThread"), or null.</summary>
    public HeapClass? FindClassByName(string name) => _classByName.TryGetValue(name, out var i) ? _classes[i] : null;

    /// <summary>True when <paramref name="cls"/> is <paramref name="ancestor"/> or one of its subclasses.</summary>
    public bool IsSubclassOf(HeapClass cls, HeapClass ancestor)
    {
        ArgumentNullException.ThrowIfNull(cls);
        ArgumentNullException.ThrowIfNull(ancestor);
        var c = cls.Index;
        for (int guard = 0; c >= 0 && guard < _classes.Length; guard++)
        {
            if (c == ancestor.Index) return true;
            c = _classes[c].SuperClass;
        }

        return false;
    }

    /// <summary>Text of an HPROF string that names a class, a field or a frame's method or source file ("" for other ids). Cost: a lookup and a decode.</summary>
    public string GetString(long id) => _strings.TryGetValue(id, out var s) ? File.Utf8(s.Offset, s.Length) : "";

    /// <summary>The thread object of a thread serial, or -1.</summary>
    public int GetThreadObject(int threadSerial) => _threadObjectBySerial.TryGetValue(threadSerial, out var o) ? o : -1;

    /// <summary>
    /// Stack frames of the thread with this serial (top first, so index = the frame number of its local roots); empty
    /// when the dump has no trace. Cost: lookups and string decodes per frame.
    /// </summary>
    public IReadOnlyList<HeapFrame> GetThreadStack(int threadSerial)
    {
        if (!_threadTraceBySerial.TryGetValue(threadSerial, out var traceSerial) || !_traces.TryGetValue(traceSerial, out var frameIds)) return [];
        var result = new List<HeapFrame>(frameIds.Length);
        foreach (var fid in frameIds)
        {
            // A frame id without its FRAME record keeps its slot so that frame numbers of local roots still line up.
            if (!_frames.TryGetValue(fid, out var fr))
            {
                result.Add(new HeapFrame("?", "?", "", -1));
                continue;
            }

            var cls = _classIdBySerial.TryGetValue(fr.ClassSerial, out var cid) && _classById.TryGetValue(cid, out var ci) ? _classes[ci].Name : "?";
            result.Add(new HeapFrame(GetString(fr.Method), cls, GetString(fr.Source), fr.Line));
        }

        return result;
    }

    /// <summary>Serial numbers of threads with a thread-object root.</summary>
    public IEnumerable<int> ThreadSerials => _threadObjectBySerial.Keys;

    /// <summary>
    /// Reads an instance field by name, searching from the object's own class up (so a subclass field hides a
    /// super's); <paramref name="declaringClass"/> picks a hidden one. Returns false when absent or not an instance.
    /// Cost: a scan of the class layout and one read of the file.
    /// </summary>
    public bool TryReadField(int obj, string name, out long value, string? declaringClass = null)
    {
        value = 0;
        if (_kind[obj] != (byte)HeapObjectKind.Instance) return false;
        var layout = _classes[_classOf[obj]].LayoutArray;
        for (int i = 0; i < layout.Length; i++)
        {
            ref readonly var f = ref layout[i];
            if (!string.Equals(f.Name, name, StringComparison.Ordinal)) continue;
            if (declaringClass != null && !string.Equals(_classes[f.DeclaringClass].Name, declaringClass, StringComparison.Ordinal)) continue;
            value = File.Value(InstanceData(obj) + f.Offset, f.Type);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Finds an instance field of a class by name (own fields first, then the supers'); for loops that read one
    /// field of many objects of few classes, with <see cref="ReadField"/>. Cost: a scan of the class layout.
    /// </summary>
    public bool TryFindField(int classIndex, string name, out HeapField field)
    {
        foreach (var f in _classes[classIndex].LayoutArray)
        {
            if (!string.Equals(f.Name, name, StringComparison.Ordinal)) continue;
            field = f;
            return true;
        }

        field = default;
        return false;
    }

    /// <summary>Reads a field found with <see cref="TryFindField"/> from an instance of that class. Cost: one read of the file.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long ReadField(int obj, in HeapField field) => File.Value(InstanceData(obj) + field.Offset, field.Type);

    /// <summary>Reads an object field and maps it to a dense index; -1 when null, absent or dangling.</summary>
    public int ReadObjectField(int obj, string name, string? declaringClass = null) =>
        TryReadField(obj, name, out var id, declaringClass) && id != 0 ? FindObjectIndexOrNone(id) : -1;

    /// <summary>Reads an int/long/boolean field; <paramref name="fallback"/> when absent.</summary>
    public long ReadPrimitiveField(int obj, string name, long fallback = 0, string? declaringClass = null) =>
        TryReadField(obj, name, out var v, declaringClass) ? v : fallback;

    /// <summary>
    /// The referent of a java.lang.ref.Reference instance (the edge the CSR leaves out), or -1. Cost: a binary
    /// search in a side table filled by the index pass (8 bytes per reference object), no file read.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetReferent(int obj)
    {
        var keys = _referenceObjects;
        int lo = 0, hi = keys.Length - 1;
        while (lo <= hi)
        {
            int mid = (int)((uint)(lo + hi) >> 1);
            int v = keys[mid];
            if (v == obj) return _referents[mid];
            if (v < obj) lo = mid + 1;
            else hi = mid - 1;
        }

        return -1;
    }

    /// <summary>
    /// Every java.lang.ref.Reference instance with a referent in the dump, ascending, and its referent at the same
    /// position: for loops over all references without a search per object.
    /// </summary>
    public (ReadOnlyMemory<int> References, ReadOnlyMemory<int> Referents) ReferencePairs => (_referenceObjects, _referents);

    /// <summary>Length of an array object, -1 for other kinds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int GetArrayLength(int obj) => _kind[obj] is (byte)HeapObjectKind.ObjectArray or (byte)HeapObjectKind.PrimitiveArray
        ? (int)File.U4(_offsets[obj] + 1 + File.IdSize + 4)
        : -1;

    /// <summary>Element <paramref name="index"/> of an object array as a dense index, -1 when null or dangling.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public int ReadArrayElement(int obj, int index)
    {
        if (_kind[obj] != (byte)HeapObjectKind.ObjectArray) return -1;
        int len = GetArrayLength(obj);
        if ((uint)index >= (uint)len) return -1;
        var id = File.Id(_offsets[obj] + 1 + (2L * File.IdSize) + 8 + ((long)index * File.IdSize));
        return id == 0 ? -1 : FindObjectIndexOrNone(id);
    }

    /// <summary>
    /// Decodes a java.lang.String (JDK 9+ byte[] with coder, or JDK 8 char[]) to text, cut to
    /// <paramref name="maxChars"/>; null when the object is not a String.
    /// </summary>
    public string? ReadString(int obj, int maxChars = 200)
    {
        if (obj < 0 || GetClass(obj).Name != "java.lang.String") return null;
        var arr = ReadObjectField(obj, "value");
        if (arr < 0 || _kind[arr] != (byte)HeapObjectKind.PrimitiveArray) return "";
        int len = GetArrayLength(arr);
        var type = GetClass(arr).ArrayElementType;
        long data = _offsets[arr] + 1 + File.IdSize + 9;
        if (type == HprofBasicType.Byte)
        {
            var coder = ReadPrimitiveField(obj, "coder");
            if (coder == 0)
                return System.Text.Encoding.Latin1.GetString(File.Span(data, Math.Min(len, maxChars)));
            var chars = Math.Min(len / 2, maxChars);
            return System.Text.Encoding.BigEndianUnicode.GetString(File.Span(data, chars * 2));
        }

        if (type == HprofBasicType.Char)
            return System.Text.Encoding.BigEndianUnicode.GetString(File.Span(data, Math.Min(len, maxChars) * 2));
        return "";
    }

    /// <summary>
    /// Names the edge from <paramref name="from"/> to <paramref name="to"/>: a field name, "[i]" for array slots,
    /// a static field name for class objects. Cost: decodes the source object once.
    /// </summary>
    public string DescribeEdge(int from, int to)
    {
        var id = _ids[to];
        var f = File;
        switch ((HeapObjectKind)_kind[from])
        {
            case HeapObjectKind.Instance:
                {
                    var data = InstanceData(from);
                    var cls = _classes[_classOf[from]];
                    foreach (var fld in cls.Layout)
                    {
                        if (fld.Type == HprofBasicType.Object && f.Id(data + fld.Offset) == id)
                            return IsHidden(cls, fld.Name) ? _classes[fld.DeclaringClass].Name + "." + fld.Name : fld.Name;
                    }

                    break;
                }

            case HeapObjectKind.ObjectArray:
                {
                    int len = GetArrayLength(from);
                    long data = _offsets[from] + 1 + (2L * f.IdSize) + 8;
                    for (int i = 0; i < len; i++)
                    {
                        if (f.Id(data + ((long)i * f.IdSize)) == id) return FormattableString.Invariant($"[{i}]");
                    }

                    break;
                }

            case HeapObjectKind.Class:
                {
                    var c = GetDescribedClass(from);
                    if (c == null) break;
                    foreach (var s in c.StaticFields)
                    {
                        if (s.Type == HprofBasicType.Object && s.Value == id) return "static " + s.Name;
                    }

                    if (c.ClassLoaderId == id) return "<classloader>";
                    break;
                }
        }

        return "?";
    }

    /// <summary>True when more than one field of the layout has this name (a subclass field hides a super's).</summary>
    private static bool IsHidden(HeapClass cls, string name)
    {
        int count = 0;
        foreach (var f in cls.LayoutArray)
        {
            if (f.Name == name) count++;
        }

        return count > 1;
    }

    /// <summary>Offset of the instance field data of an instance record.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal long InstanceData(int obj) => _offsets[obj] + 1 + (2L * File.IdSize) + 8;

    /// <summary>Mutable state handed from the builder to the graph.</summary>
    internal sealed class Builder
    {
        public long[] Ids = [];
        public IdLookup? Lookup;
        public long[] Offsets = [];
        public int[] ClassOf = [];
        public byte[] Kind = [];
        public int[] Shallow = [];
        public int[] RefStart = [];
        public int[] Refs = [];
        public int[] ReferenceObjects = [];
        public int[] Referents = [];
        public long RefCount;
        public long Dangling;
        public HeapClass[] Classes = [];
        public Dictionary<string, int> ClassByName = new(StringComparer.Ordinal);
        public Dictionary<long, int> ClassById = [];
        public Dictionary<long, (long Offset, int Length)> Strings = [];
        public List<HeapRoot> Roots = [];
        public Dictionary<int, int> ThreadObjectBySerial = [];
        public Dictionary<int, int> ThreadTraceBySerial = [];
        public Dictionary<int, long[]> Traces = [];
        public Dictionary<long, (long Method, long Source, int ClassSerial, int Line)> Frames = [];
        public Dictionary<int, long> ClassIdBySerial = [];
        public HprofFile? TraceFile;
    }
}
