using System.Runtime.CompilerServices;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Graph;

/// <summary>
/// Builds a <see cref="HeapGraph"/> in two passes over the file, after Shark's HprofInMemoryIndex: (1) metadata
/// (strings, classes, roots, stack traces) and the id and record offset of every object, then a sort by id; (2) per
/// object, in id order, its class, shallow size, outgoing references (CSR arrays) and referent. Peak memory is
/// about 33 bytes per object plus 4 per reference; the mapped file stays resident only in a window around each
/// pass's position (<see cref="HprofFile.ReleasePages"/>).
/// </summary>
internal static class HeapGraphBuilder
{
    [MethodImpl(HotLoop.Options)]
    public static HeapGraph Build(HprofFile file, Action<string, double>? progress, CancellationToken ct) => Build(file, progress, ct, null);

    /// <summary>As <see cref="Build(HprofFile, Action{string, double}?, CancellationToken)"/>; <paramref name="parallel"/> true or false forces two threads or one (tests), null decides by size.</summary>
    [MethodImpl(HotLoop.Options)]
    internal static HeapGraph Build(HprofFile file, Action<string, double>? progress, CancellationToken ct, bool? parallel)
    {
        var b = new HeapGraph.Builder();
        b.TraceFile = file;

        // One scan collects the metadata and every object's id and record offset (growable arrays: at most twice
        // the final 16 bytes per object while growing), which saves a second full pass over the file. A big file is
        // cut at a record boundary near its middle and the halves are scanned by two threads, each into its own
        // containers, joined in file order afterwards.
        progress?.Invoke("index: metadata", 0);
        bool twoThreads = parallel ?? (file.Length >= ParallelScanThreshold && Environment.ProcessorCount >= 2);
        var (meta, second) = ScanMetadata(file, b, progress, ct, twoThreads);
        ct.ThrowIfCancellationRequested();
        progress?.Invoke("index: positions", 0);
        int firstCount = meta.Count;
        if (second is { } s2) meta.Join(s2);

        // The classes (names, layouts) need no object position: on a big file they are built on a second thread
        // while this one joins and sorts the positions.
        var joined = meta;
        var classesTask = twoThreads ? Task.Run(() => BuildClassesAndStrings(file, b, joined), CancellationToken.None) : null;
        try
        {
            var ids = new long[firstCount + (second?.Count ?? 0)];
            var offsets = new long[ids.Length];
            var primitive = new int[ids.Length];
            meta.CopyPositionsTo(ids, offsets, primitive, 0);
            if (second is { } s3)
            {
                s3.CopyPositionsTo(ids, offsets, primitive, firstCount);
                second = null;
            }

            meta.ReleasePositions();
            SortByIds(ids, offsets, primitive);
            for (int i = 1; i < ids.Length; i++)
            {
                if (ids[i] == ids[i - 1])
                    throw new HprofFormatException(HprofErrorKind.Corrupt, offsets[i], -1, FormattableString.Invariant($"object id 0x{ids[i]:X} appears twice"));
            }

            b.Ids = ids;
            b.Offsets = offsets;
            b.Shallow = primitive;
        }
        finally
        {
            // Never leave the other thread reading the file after a failure here; its own failure comes out below.
            if (classesTask != null)
            {
                try
                {
                    classesTask.Wait(CancellationToken.None);
                }
                catch (AggregateException)
                {
                    // Rethrown by GetResult below unless this thread's failure is already on its way.
                }
            }
        }

        int dumpClasses = classesTask != null ? classesTask.GetAwaiter().GetResult() : BuildClassesAndStrings(file, b, meta);
        for (int i = 0; i < dumpClasses; i++) b.Classes[i].ObjectIndex = FindIndex(b.Ids, b.Classes[i].Id);
        progress?.Invoke("index: references", 0);
        IndexObjects(file, b, progress, ct, parallel ?? (b.Ids.Length >= ParallelIndexThreshold && Environment.ProcessorCount >= 2));
        // The analyses read only a few objects back from the file; let those fault in again when they are read.
        file.ReleasePages(0, file.Length);
        ResolveRoots(b, meta);
        return new HeapGraph(file, b);
    }

    /// <summary>Files below this size are scanned by one thread (a second one costs more than it saves).</summary>
    private const long ParallelScanThreshold = 32L << 20;

    private static (MetaVisitor First, MetaVisitor? Second) ScanMetadata(HprofFile file, HeapGraph.Builder b, Action<string, double>? progress, CancellationToken ct, bool parallel)
    {
        double len = file.Length;
        var meta = new MetaVisitor(b);
        var scanner = new HprofScanner(file);
        Action<long>? report = progress == null ? null : p => progress("index: metadata", p / len);
        if (!parallel)
        {
            scanner.Scan(ref meta, HprofRecordKinds.All, report, ct);
            return (meta, null);
        }

        var (split, tagBeforeSplit) = scanner.FindRecordBoundary(file.HeaderLength + ((file.Length - file.HeaderLength) / 2));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var other = Task.Run(
            () =>
            {
                var b2 = new HeapGraph.Builder { TraceFile = file };
                var v = new MetaVisitor(b2);
                var state = new HprofScanner.ScanState { PreviousTag = tagBeforeSplit };
                new HprofScanner(file).ScanRange(ref v, HprofRecordKinds.All, split, file.Length, ref state, null, stop.Token);
                return (Visitor: v, State: state);
            },
            stop.Token);
        var firstState = new HprofScanner.ScanState { PreviousTag = -1 };
        try
        {
            scanner.ScanRange(ref meta, HprofRecordKinds.All, file.HeaderLength, split, ref firstState, report, stop.Token);
        }
        catch
        {
            // The failure earlier in the file is the one to report, as a single scan would.
            StopOther(stop, other);
            throw;
        }

        var (second, secondState) = other.GetAwaiter().GetResult();
        HprofScanner.Finish(file, HprofScanner.ScanState.Join(firstState, secondState));
        return (meta, second);
    }

    /// <summary>The calling thread's half failed: cancel the other half and wait for it, ignoring its own failure.</summary>
    private static void StopOther(CancellationTokenSource stop, Task other)
    {
        stop.Cancel();
        try
        {
            other.Wait(CancellationToken.None);
        }
        catch (AggregateException)
        {
            // The caller rethrows its own failure.
        }
    }

    /// <summary>
    /// Sorts ids (and their offsets and primitive-array words) ascending. HotSpot writes the class dumps first and
    /// then the heap in address order, so all but a short head is usually sorted already: sort the head and merge it
    /// with the sorted tail (O(n) plus the head's sort) instead of sorting everything.
    /// </summary>
    [MethodImpl(HotLoop.Options)]
    private static void SortByIds(long[] ids, long[] offsets, int[] primitive)
    {
        int n = ids.Length;
        int tail = n - 1;
        while (tail > 0 && ids[tail - 1] <= ids[tail]) tail--;
        if (tail == 0) return;
        if (tail > n / 2) tail = n;

        // The head is sorted through a permutation so that the two parallel arrays follow their ids.
        var headIds = ids[..tail];
        var order = new int[tail];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        Array.Sort(headIds, order);
        var headOffsets = new long[tail];
        var headPrimitive = new int[tail];
        for (int i = 0; i < order.Length; i++)
        {
            headOffsets[i] = offsets[order[i]];
            headPrimitive[i] = primitive[order[i]];
        }

        int a = 0, b = tail, o = 0;
        while (a < headIds.Length && b < n)
        {
            if (headIds[a] <= ids[b])
            {
                ids[o] = headIds[a];
                primitive[o] = headPrimitive[a];
                offsets[o++] = headOffsets[a++];
            }
            else
            {
                ids[o] = ids[b];
                primitive[o] = primitive[b];
                offsets[o++] = offsets[b++];
            }
        }

        while (a < headIds.Length)
        {
            ids[o] = headIds[a];
            primitive[o] = headPrimitive[a];
            offsets[o++] = headOffsets[a++];
        }
    }

    /// <summary>
    /// Fills <see cref="HeapGraph.Builder.Strings"/> with the strings the graph names things by: class, field and
    /// static field names and the frames' method and source file names. Later records of one id win, as in the file.
    /// </summary>
    private static void IndexStrings(HprofFile file, HeapGraph.Builder b, MetaVisitor meta)
    {
        var wanted = new HashSet<long>(meta.ClassNames.Values);
        foreach (var cd in meta.ClassDumps)
        {
            foreach (var sf in cd.StaticFields) wanted.Add(sf.NameId);
            foreach (var fd in cd.InstanceFields) wanted.Add(fd.NameId);
        }

        foreach (var fr in b.Frames.Values)
        {
            wanted.Add(fr.Method);
            wanted.Add(fr.Source);
        }

        int idSize = file.IdSize;
        for (int i = 0; i < meta.StringCount; i++)
        {
            long text = meta.StringOffsets[i];
            long id = file.Id(text - idSize);
            if (!wanted.Contains(id)) continue;
            // The record's length (before its id) less the id is the text's length; the scan checked both.
            b.Strings[id] = (text, (int)(file.U4(text - idSize - 4) - idSize));
        }
    }

    private static string JavaName(string internalName)
    {
        int dims = 0;
        while (dims < internalName.Length && internalName[dims] == '[') dims++;
        if (dims == 0) return internalName.Replace('/', '.');
        var rest = internalName[dims..];
        string elem = rest switch
        {
            "Z" => "boolean",
            "C" => "char",
            "F" => "float",
            "D" => "double",
            "B" => "byte",
            "S" => "short",
            "I" => "int",
            "J" => "long",
            _ when rest.StartsWith('L') && rest.EndsWith(';') => rest[1..^1].Replace('/', '.'),
            _ => rest.Replace('/', '.'),
        };
        return elem + string.Concat(Enumerable.Repeat("[]", dims));
    }

    private static HprofBasicType? ElementTypeOf(string javaName)
    {
        if (!javaName.EndsWith("[]", StringComparison.Ordinal)) return null;
        var elem = javaName[..^2];
        foreach (var t in PrimitiveTypes)
        {
            if (elem == HprofTypes.JavaName(t)) return t;
        }

        return HprofBasicType.Object;
    }

    /// <summary>The smallest primitive element type (boolean); the scan stores element types as an offset from it in 3 bits.</summary>
    private const int PrimitiveTypeBase = (int)HprofBasicType.Boolean;

    private static readonly HprofBasicType[] PrimitiveTypes =
    [
        HprofBasicType.Boolean, HprofBasicType.Char, HprofBasicType.Float, HprofBasicType.Double,
        HprofBasicType.Byte, HprofBasicType.Short, HprofBasicType.Int, HprofBasicType.Long,
    ];

    /// <summary>The strings, then the classes; returns how many classes came from class dumps (the first ones).</summary>
    private static int BuildClassesAndStrings(HprofFile file, HeapGraph.Builder b, MetaVisitor meta)
    {
        IndexStrings(file, b, meta);
        return BuildClasses(file, b, meta);
    }

    /// <summary>Builds the classes (without <see cref="HeapClass.ObjectIndex"/>, which needs the sorted ids); returns how many came from class dumps.</summary>
    [MethodImpl(HotLoop.Options)]
    private static int BuildClasses(HprofFile file, HeapGraph.Builder b, MetaVisitor meta)
    {
        var classes = new List<HeapClass>(meta.ClassDumps.Count + 9);
        var dumps = new Dictionary<int, HprofClassDump>();
        foreach (var cd in meta.ClassDumps)
        {
            if (b.ClassById.ContainsKey(cd.ClassId)) continue;
            var name = meta.ClassNames.TryGetValue(cd.ClassId, out var nameId) && b.Strings.TryGetValue(nameId, out var s)
                ? JavaName(file.Utf8(s.Offset, s.Length))
                : FormattableString.Invariant($"class@0x{cd.ClassId:X}");
            var hc = new HeapClass(classes.Count, cd.ClassId, name)
            {
                InstanceSize = cd.InstanceSize,
                ClassLoaderId = cd.ClassLoaderId,
                ArrayElementType = ElementTypeOf(name),
            };
            b.ClassById[cd.ClassId] = hc.Index;
            dumps[hc.Index] = cd;
            classes.Add(hc);
            b.ClassByName.TryAdd(name, hc.Index);
        }

        int fromDumps = classes.Count;
        foreach (var t in PrimitiveTypes)
        {
            var name = HprofTypes.JavaName(t) + "[]";
            if (b.ClassByName.ContainsKey(name)) continue;
            var hc = new HeapClass(classes.Count, 0, name) { ArrayElementType = t };
            classes.Add(hc);
            b.ClassByName[name] = hc.Index;
        }

        b.Classes = [.. classes];
        foreach (var (index, cd) in dumps)
        {
            var hc = b.Classes[index];
            hc.SuperClass = cd.SuperClassId != 0 && b.ClassById.TryGetValue(cd.SuperClassId, out var sup) ? sup : -1;
            var statics = new HeapStaticField[cd.StaticFields.Count];
            for (int i = 0; i < statics.Length; i++)
            {
                var sf = cd.StaticFields[i];
                statics[i] = new HeapStaticField(Str(file, b, sf.NameId), sf.Type, sf.Value);
            }

            hc.StaticFields = statics;
        }

        var referenceClass = b.ClassByName.TryGetValue("java.lang.ref.Reference", out var rc) ? rc : -1;
        foreach (var (index, cd) in dumps)
        {
            var hc = b.Classes[index];
            var layout = new List<HeapField>();
            var refOffsets = new List<int>();
            int offset = 0;
            int c = index;
            for (int guard = 0; c >= 0 && guard <= b.Classes.Length; guard++)
            {
                if (!dumps.TryGetValue(c, out var d)) break;
                foreach (var fd in d.InstanceFields)
                {
                    var field = new HeapField(Str(file, b, fd.NameId), fd.Type, offset, c);
                    layout.Add(field);
                    if (fd.Type == HprofBasicType.Object)
                    {
                        if (c == referenceClass && field.Name == "referent") hc.ReferentOffset = offset;
                        else refOffsets.Add(offset);
                    }

                    offset += HprofTypes.SizeOf(fd.Type, file.IdSize);
                }

                if (c == referenceClass) hc.IsReference = true;
                c = b.Classes[c].SuperClass;
            }

            hc.LayoutArray = [.. layout];
            var declared = new List<HeapField>();
            foreach (var l in layout)
            {
                if (l.DeclaringClass == index) declared.Add(l);
            }

            hc.DeclaredFields = declared;
            hc.RefOffsets = [.. refOffsets];
            hc.LayoutSize = offset;
        }

        return fromDumps;
    }

    private static string Str(HprofFile file, HeapGraph.Builder b, long id) =>
        b.Strings.TryGetValue(id, out var s) ? file.Utf8(s.Offset, s.Length) : FormattableString.Invariant($"field@0x{id:X}");

    private static int FindIndex(long[] ids, long id)
    {
        var i = Array.BinarySearch(ids, id);
        return i >= 0 ? i : -1;
    }

    /// <summary>Appends the edge to <paramref name="target"/> (null ids are no edge; ids not in the dump count as dangling).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddEdge(IdLookup lookup, long target, int holder, ref int[] refs, ref int refCount, ref long dangling)
    {
        if (target == 0) return;
        int t = lookup.FindNear(target, holder);
        if (t < 0)
        {
            dangling++;
            return;
        }

        if (refCount == refs.Length) Array.Resize(ref refs, Grow(refs.Length));
        refs[refCount++] = t;
    }

    private static int Align8(long size) => (int)Math.Min(int.MaxValue, (size + 7) & ~7L);

    /// <summary>
    /// Below this many objects the reference pass runs on one thread (a second one costs more than it saves). The
    /// 90 MB dump's 122,000 objects took 14 ms on one thread while the other core waited.
    /// </summary>
    private const int ParallelIndexThreshold = 50_000;

    /// <summary>
    /// The reference pass. Objects are independent of each other here, so the index range is cut in two halves
    /// that two threads decode at once (each into its own reference buffer, then joined); the mapped file is
    /// thread-safe for reads and the halves touch disjoint parts of the per-object arrays.
    /// </summary>
    private static void IndexObjects(HprofFile file, HeapGraph.Builder b, Action<string, double>? progress, CancellationToken ct, bool parallel)
    {
        int n = b.Ids.Length;
        var ids = b.Ids;
        b.Lookup ??= new IdLookup(ids);
        var classes = b.Classes;
        var ctx = new IndexContext(file, b, n);

        // Shallow sizes follow the JVM's layout, as VisualVM computes them: the dump's ids are 8 bytes, but a
        // 64-bit JVM with a heap under 32 GiB uses compressed oops (4-byte references, 12-byte object headers).
        // The highest object address tells which mode the dump came from.
        int id = file.IdSize;
        bool compressed = id == 4 || (n > 0 && (ulong)ids[n - 1] < (32UL << 30));
        ctx.RefSlot = compressed ? 4 : 8;
        int objectHeader = compressed ? 12 : 16;
        foreach (var c in classes)
        {
            if (c.IsArray || c.Id == 0) continue;
            long size = objectHeader;
            foreach (var fld in c.Layout) size += fld.Type == HprofBasicType.Object ? ctx.RefSlot : HprofTypes.SizeOf(fld.Type, id);
            c.JvmInstanceSize = Align8(size);
        }

        IndexRange first, second;
        if (!parallel)
        {
            first = IndexRange.Run(ctx, 0, n, n, progress, ct);
            second = IndexRange.Run(ctx, n, n, 0, null, ct);
        }
        else
        {
            int half = n / 2;
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var other = Task.Run(() => IndexRange.Run(ctx, half, n, n - half, null, stop.Token), stop.Token);
            try
            {
                // The first half's buffer is sized for both, so that the join usually copies only the second's.
                first = IndexRange.Run(ctx, 0, half, n, progress, stop.Token);
            }
            catch
            {
                // The first failure is the one to report.
                StopOther(stop, other);
                throw;
            }

            second = other.GetAwaiter().GetResult();
        }

        // Join: the second half's reference offsets move up by the first half's count.
        long total = (long)first.RefCount + second.RefCount;
        if (total > Array.MaxLength) throw new HprofFormatException(HprofErrorKind.Corrupt, 0, -1, "more references than an index can hold");
        // The targets array may end in unused slots (never written, so never faulted in): readers go by RefStart.
        var refs = first.Refs;
        if (refs.Length < total) Array.Resize(ref refs, (int)total);
        Array.Copy(second.Refs, 0, refs, first.RefCount, second.RefCount);
        var refStart = ctx.RefStart;
        int shift = first.RefCount;
        if (shift != 0)
        {
            for (int i = second.From; i < n; i++) refStart[i] += shift;
        }

        refStart[n] = (int)total;
        var referenceObjects = new int[first.ReferenceCount + second.ReferenceCount];
        var referents = new int[referenceObjects.Length];
        Array.Copy(first.ReferenceObjects, referenceObjects, first.ReferenceCount);
        Array.Copy(second.ReferenceObjects, 0, referenceObjects, first.ReferenceCount, second.ReferenceCount);
        Array.Copy(first.Referents, referents, first.ReferenceCount);
        Array.Copy(second.Referents, 0, referents, first.ReferenceCount, second.ReferenceCount);
        foreach (var c in classes)
        {
            c.InstanceCount = first.InstanceCount[c.Index] + second.InstanceCount[c.Index];
            c.ShallowSizeTotal = first.ShallowTotal[c.Index] + second.ShallowTotal[c.Index];
        }

        b.ReferenceObjects = referenceObjects;
        b.Referents = referents;
        b.ClassOf = ctx.ClassOf;
        b.Kind = ctx.Kind;
        b.Shallow = ctx.Shallow;
        b.RefStart = refStart;
        b.Refs = refs;
        b.RefCount = total;
        b.Dangling = first.Dangling + second.Dangling;
    }

    /// <summary>What both halves of the reference pass share: the inputs and the per-object output arrays.</summary>
    private sealed class IndexContext(HprofFile file, HeapGraph.Builder b, int n)
    {
        public readonly HprofFile File = file;
        public readonly HeapGraph.Builder B = b;
        public readonly int[] ClassOf = new int[n];
        public readonly byte[] Kind = new byte[n];
        /// <summary>On entry the scan's primitive-array words (<see cref="MetaVisitor.OnPrimitiveArray"/>), on exit shallow sizes.</summary>
        public readonly int[] Shallow = b.Shallow.Length == n ? b.Shallow : new int[n];
        public readonly int[] RefStart = new int[n + 1];
        public int RefSlot;
    }

    /// <summary>One half of the reference pass: objects [From, To) in id order, with its own reference buffer.</summary>
    private sealed class IndexRange
    {
        public int From;
        public int[] Refs = [];
        public int RefCount;
        public long Dangling;
        public int[] ReferenceObjects = [];
        public int[] Referents = [];
        public int ReferenceCount;
        public int[] InstanceCount = [];
        public long[] ShallowTotal = [];

        [MethodImpl(HotLoop.Options)]
        /// <summary>Decodes objects [<paramref name="from"/>, <paramref name="to"/>), with a reference buffer first sized for <paramref name="objectsToHold"/> objects' references.</summary>
        public static IndexRange Run(IndexContext ctx, int from, int to, int objectsToHold, Action<string, double>? progress, CancellationToken ct)
        {
            var file = ctx.File;
            var b = ctx.B;
            int id = file.IdSize;
            var ids = b.Ids;
            var offsets = b.Offsets;
            var lookup = b.Lookup!;
            var classOf = ctx.ClassOf;
            var kind = ctx.Kind;
            var shallow = ctx.Shallow;
            var refStart = ctx.RefStart;
            int refSlot = ctx.RefSlot;
            const int arrayHeader = 16;
            // Two references per object is a usual average; uninitialized, so that slots never written cost nothing.
            var refs = GC.AllocateUninitializedArray<int>((int)Math.Clamp(objectsToHold * 2L, 16, Array.MaxLength));
            int refCount = 0;
            long dangling = 0;
            var classes = b.Classes;
            var classById = b.ClassById;
            int javaLangClass = b.ClassByName.TryGetValue("java.lang.Class", out var jlc) ? jlc : -1;
            var referenceObjects = new int[1024];
            var referents = new int[1024];
            int referenceCount = 0;
            long lastClassId = 0;
            int lastClass = -1;
            long released = from < to ? offsets[from] : 0;
            var primitiveArrayClass = new int[16];
            foreach (var t in PrimitiveTypes) primitiveArrayClass[(int)t] = b.ClassByName[HprofTypes.JavaName(t) + "[]"];
            var instanceCount = new int[classes.Length];
            var shallowTotal = new long[classes.Length];
            int span = Math.Max(1, to - from);
            for (int i = from; i < to; i++)
            {
                if (((i - from) & 0xFFFFF) == 0)
                {
                    ct.ThrowIfCancellationRequested();
                    progress?.Invoke("index: references", (double)(i - from) / span);
                }

                refStart[i] = refCount;
                int word = shallow[i];
                if (word != 0)
                {
                    // A primitive array: the scan already read its type and length, so its record is not touched again
                    // (most of a dump's bytes are such arrays, each on pages of its own).
                    int pc = primitiveArrayClass[(word & 7) + PrimitiveTypeBase];
                    int size = word & ~7;
                    classOf[i] = pc;
                    kind[i] = (byte)HeapObjectKind.PrimitiveArray;
                    shallow[i] = size;
                    instanceCount[pc]++;
                    shallowTotal[pc] += size;
                    continue;
                }

                long off = offsets[i];
                // Objects come in id order, which is nearly file order: keep only a window of the mapping resident.
                if (off - released > 2 * HprofScanner.ResidentWindow)
                {
                    file.ReleasePages(released, off - HprofScanner.ResidentWindow);
                    released = off - HprofScanner.ResidentWindow;
                }

                int tag = file.U1(off);
                long p = off + 1;
                switch (tag)
                {
                    case HprofTag.InstanceDump:
                        {
                            long classId = file.Id(p + id + 4);
                            int dataLen = (int)file.U4(p + (2 * id) + 4);
                            long data = p + (2 * id) + 8;
                            // Neighbouring instances are often of one class: a one-entry cache saves most dictionary lookups.
                            if (classId != lastClassId)
                            {
                                if (!classById.TryGetValue(classId, out lastClass))
                                    throw new HprofFormatException(HprofErrorKind.Corrupt, off, tag, FormattableString.Invariant($"instance of unknown class 0x{classId:X}"));
                                lastClassId = classId;
                            }

                            int ci = lastClass;
                            var cls = classes[ci];
                            if (cls.LayoutSize > dataLen)
                                throw new HprofFormatException(HprofErrorKind.Corrupt, off, tag, FormattableString.Invariant($"instance of {cls.Name} has {dataLen} bytes of fields, its class needs {cls.LayoutSize}"));
                            classOf[i] = ci;
                            kind[i] = (byte)HeapObjectKind.Instance;
                            shallow[i] = cls.JvmInstanceSize;
                            foreach (var ro in cls.RefOffsets)
                            {
                                AddEdge(lookup, file.Id(data + ro), i, ref refs, ref refCount, ref dangling);
                            }

                            // Referents go to a side table (objects arrive in index order, so it stays sorted): the
                            // analyses look many of them up, and a file read each would fault a page each.
                            if (cls.ReferentOffset >= 0)
                            {
                                long rid = file.Id(data + cls.ReferentOffset);
                                int r = rid == 0 ? -1 : lookup.Find(rid);
                                if (r >= 0)
                                {
                                    if (referenceCount == referenceObjects.Length)
                                    {
                                        Array.Resize(ref referenceObjects, Grow(referenceObjects.Length));
                                        Array.Resize(ref referents, referenceObjects.Length);
                                    }

                                    referenceObjects[referenceCount] = i;
                                    referents[referenceCount++] = r;
                                }
                            }

                            break;
                        }

                    case HprofTag.ObjectArrayDump:
                        {
                            int len = (int)file.U4(p + id + 4);
                            long classId = file.Id(p + id + 8);
                            long data = p + (2 * id) + 8;
                            classOf[i] = classById.TryGetValue(classId, out var ci) ? ci : b.ClassByName.GetValueOrDefault("java.lang.Object[]", -1);
                            if (classOf[i] < 0)
                                throw new HprofFormatException(HprofErrorKind.Corrupt, off, tag, FormattableString.Invariant($"object array of unknown class 0x{classId:X}"));
                            kind[i] = (byte)HeapObjectKind.ObjectArray;
                            shallow[i] = Align8(arrayHeader + ((long)len * refSlot));
                            for (int e = 0; e < len; e++)
                            {
                                AddEdge(lookup, file.Id(data + ((long)e * id)), i, ref refs, ref refCount, ref dangling);
                            }

                            break;
                        }

                    case HprofTag.PrimitiveArrayDump:
                    case HprofTag.PrimitiveArrayNoData:
                        {
                            int len = (int)file.U4(p + id + 4);
                            var type = (HprofBasicType)file.U1(p + id + 8);
                            classOf[i] = primitiveArrayClass[(int)type & 15];
                            kind[i] = (byte)HeapObjectKind.PrimitiveArray;
                            shallow[i] = Align8(arrayHeader + ((long)len * HprofTypes.SizeOf(type, id)));
                            break;
                        }

                    case HprofTag.ClassDump:
                        {
                            kind[i] = (byte)HeapObjectKind.Class;
                            classOf[i] = javaLangClass >= 0 ? javaLangClass : classById[ids[i]];
                            var described = classes[classById[ids[i]]];
                            shallow[i] = 0;
                            foreach (var sf in described.StaticFields)
                            {
                                if (sf.Type == HprofBasicType.Object) AddEdge(lookup, sf.Value, i, ref refs, ref refCount, ref dangling);
                            }

                            break;
                        }

                    default:
                        throw new HprofFormatException(HprofErrorKind.Corrupt, off, tag, "index points at an unexpected record");
                }

                if (kind[i] != (byte)HeapObjectKind.Class)
                {
                    instanceCount[classOf[i]]++;
                    shallowTotal[classOf[i]] += shallow[i];
                }
            }

            return new IndexRange
            {
                From = from,
                Refs = refs,
                RefCount = refCount,
                Dangling = dangling,
                ReferenceObjects = referenceObjects,
                Referents = referents,
                ReferenceCount = referenceCount,
                InstanceCount = instanceCount,
                ShallowTotal = shallowTotal,
            };
        }
    }

    private static int Grow(int length)
    {
        long next = Math.Min(Array.MaxLength, (long)length + (length / 2) + 16);
        if (next <= length) throw new HprofFormatException(HprofErrorKind.Corrupt, 0, -1, "more references than an index can hold");
        return (int)next;
    }

    private static void ResolveRoots(HeapGraph.Builder b, MetaVisitor meta)
    {
        foreach (var r in meta.RawRoots)
        {
            int o = FindIndex(b.Ids, r.Id);
            if (o < 0) continue;
            b.Roots.Add(new HeapRoot(o, r.Kind, r.ThreadSerial, r.Frame));
            if (r.Kind == HprofRootKind.ThreadObject)
            {
                b.ThreadObjectBySerial[r.ThreadSerial] = o;
                b.ThreadTraceBySerial[r.ThreadSerial] = r.Frame;
            }
        }
    }

    private struct MetaVisitor(HeapGraph.Builder b) : IHprofVisitor
    {
        /// <summary>Adds what a scan of a later part of the file collected (its ids and offsets are joined by the caller).</summary>
        public void Join(MetaVisitor later)
        {
            var lb = later.Builder;
            if (StringCount + later.StringCount > StringOffsets.Length) Array.Resize(ref StringOffsets, StringCount + later.StringCount);
            Array.Copy(later.StringOffsets, 0, StringOffsets, StringCount, later.StringCount);
            StringCount += later.StringCount;
            foreach (var (k, v) in lb.ClassIdBySerial) b.ClassIdBySerial[k] = v;
            foreach (var (k, v) in lb.Frames) b.Frames[k] = v;
            foreach (var (k, v) in lb.Traces) b.Traces[k] = v;
            foreach (var (k, v) in later.ClassNames) ClassNames[k] = v;
            ClassDumps.AddRange(later.ClassDumps);
            RawRoots.AddRange(later.RawRoots);
        }

        public readonly HeapGraph.Builder Builder => b;

        public readonly List<HprofClassDump> ClassDumps = [];
        public readonly Dictionary<long, long> ClassNames = [];
        public readonly List<(long Id, HprofRootKind Kind, int ThreadSerial, int Frame)> RawRoots = [];
        /// <summary>Text offsets of the string records, in file order (the id is just before each).</summary>
        public long[] StringOffsets = [];
        public int StringCount;
        /// <summary>
        /// Objects per chunk of positions. The positions grow by whole chunks instead of by doubling and copying an
        /// array: a copy was a fresh array of pages to fault in each time (about 1.2 MB on the 90 MB dump, tens of
        /// MB on the 871 MB one), and the chunks are copied into the sorted arrays once anyway.
        /// </summary>
        private const int ChunkSize = 1 << 16;

        /// <summary>The filled chunks, in file order; the current one is <see cref="Ids"/>, <see cref="Offsets"/>, <see cref="Primitive"/>.</summary>
        private readonly List<(long[] Ids, long[] Offsets, int[] Primitive)> _fullChunks = [];

        /// <summary>The current chunk's ids; object <c>Count - 1</c> is at <c>(Count - 1) % ChunkSize</c>.</summary>
        public long[] Ids = GC.AllocateUninitializedArray<long>(ChunkSize);
        public long[] Offsets = GC.AllocateUninitializedArray<long>(ChunkSize);

        /// <summary>Per object: 0, or for a primitive array its shallow size (a multiple of 8) plus its element type minus <see cref="PrimitiveTypeBase"/>.</summary>
        public int[] Primitive = new int[ChunkSize];

        /// <summary>Objects seen, in all chunks.</summary>
        public int Count;

        /// <summary>Copies every object's id, offset and primitive-array word, in file order, to the arrays at <paramref name="at"/>.</summary>
        public readonly void CopyPositionsTo(long[] ids, long[] offsets, int[] primitive, int at)
        {
            int done = 0;
            foreach (var c in _fullChunks)
            {
                Array.Copy(c.Ids, 0, ids, at + done, ChunkSize);
                Array.Copy(c.Offsets, 0, offsets, at + done, ChunkSize);
                Array.Copy(c.Primitive, 0, primitive, at + done, ChunkSize);
                done += ChunkSize;
            }

            Array.Copy(Ids, 0, ids, at + done, Count - done);
            Array.Copy(Offsets, 0, offsets, at + done, Count - done);
            Array.Copy(Primitive, 0, primitive, at + done, Count - done);
        }

        /// <summary>Lets the chunks go once they are copied.</summary>
        public void ReleasePositions()
        {
            _fullChunks.Clear();
            Ids = [];
            Offsets = [];
            Primitive = [];
        }

        /// <summary>
        /// Only where each string is: a dump holds tens of thousands (every symbol of the JVM), the graph needs the few
        /// thousand that name classes, fields and frames (<see cref="IndexStrings"/>). A dictionary of all of them was
        /// about 4 MB of fresh memory on a 90 MB dump.
        /// </summary>
        public void OnString(long id, long textOffset, int byteLength)
        {
            if (StringCount == StringOffsets.Length) Array.Resize(ref StringOffsets, Math.Max(1024, StringCount * 2));
            StringOffsets[StringCount++] = textOffset;
        }

        public readonly void OnLoadClass(int classSerial, long classId, int stackSerial, long nameId)
        {
            ClassNames[classId] = nameId;
            b.ClassIdBySerial[classSerial] = classId;
        }

        public readonly void OnFrame(long frameId, long methodNameId, long signatureId, long sourceFileId, int classSerial, int line) =>
            b.Frames[frameId] = (methodNameId, sourceFileId, classSerial, line);

        public readonly void OnTrace(int serial, int threadSerial, long frameIdsOffset, int frameCount)
        {
            var f = b.TraceFile!;
            var frames = new long[frameCount];
            for (int i = 0; i < frameCount; i++) frames[i] = f.Id(frameIdsOffset + ((long)i * f.IdSize));
            b.Traces[serial] = frames;
        }

        public readonly void OnRoot(HprofRootKind kind, long objectId, int threadSerial, int frameNumber) =>
            RawRoots.Add((objectId, kind, threadSerial, frameNumber));

        public void OnClassDump(HprofClassDump dump)
        {
            ClassDumps.Add(dump);
            Add(dump.ClassId, dump.RecordOffset);
        }

        public void OnInstance(long id, long classId, long recordOffset, long dataOffset, int dataLength) => Add(id, recordOffset);

        public void OnObjectArray(long id, long arrayClassId, long recordOffset, long elementsOffset, int length) => Add(id, recordOffset);

        public void OnPrimitiveArray(long id, HprofBasicType type, long recordOffset, long dataOffset, int length)
        {
            Add(id, recordOffset);
            long size = Math.Min(int.MaxValue & ~7L, (16 + ((long)length * HprofTypes.SizeOf(type, 8)) + 7) & ~7L);
            Primitive[(Count - 1) & (ChunkSize - 1)] = (int)size | ((int)type - PrimitiveTypeBase);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void Add(long id, long offset)
        {
            int i = Count & (ChunkSize - 1);
            if (i == 0 && Count != 0) NextChunk(offset);
            Ids[i] = id;
            Offsets[i] = offset;
            Count++;
        }

        private void NextChunk(long offset)
        {
            if (Count >= Array.MaxLength - ChunkSize) throw new HprofFormatException(HprofErrorKind.Corrupt, offset, -1, "more objects than an index can hold");
            _fullChunks.Add((Ids, Offsets, Primitive));
            Ids = GC.AllocateUninitializedArray<long>(ChunkSize);
            Offsets = GC.AllocateUninitializedArray<long>(ChunkSize);
            Primitive = new int[ChunkSize];
        }
    }
}
