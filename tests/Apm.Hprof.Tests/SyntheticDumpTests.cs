using Apm.Hprof.Graph;
using Apm.Hprof.Reader;

namespace Apm.Hprof.Tests;

public class SyntheticDumpTests
{
    private static readonly HprofRootKind[] AllRootKinds = Enum.GetValues<HprofRootKind>();

    internal sealed record Sample(byte[] Bytes, long Holder, long Leaf, long Weak, long WeakOnly, long Array, long Bytes16);

    /// <summary>A small heap: a Holder rooted as a Java local, pointing at a Leaf, an Object[] and a WeakReference.</summary>
    internal static Sample BuildSample(int idSize, bool segments, string holderName = "app.Holder")
    {
        var w = new HprofWriter(idSize, segments);
        var obj = w.Class("java/lang/Object", 0, []);
        var reference = w.Class("java/lang/ref/Reference", obj, [("referent", HprofBasicType.Object), ("queue", HprofBasicType.Object), ("next", HprofBasicType.Object)]);
        var weak = w.Class("java/lang/ref/WeakReference", reference, []);
        var leafClass = w.Class("app/Leaf", obj, [("payload", HprofBasicType.Object)]);
        var holder = w.Class(holderName.Replace('.', '/'), obj, [("child", HprofBasicType.Object), ("items", HprofBasicType.Object), ("weak", HprofBasicType.Object), ("n", HprofBasicType.Int), ("flag", HprofBasicType.Boolean)]);
        var arrClass = w.Class("[Ljava/lang/Object;", obj, []);
        var bytes = w.PrimitiveArray(HprofBasicType.Byte, 16);
        var leaf = w.Instance(leafClass, bytes);
        var weakOnly = w.Instance(leafClass, 0);
        var weakRef = w.Instance(weak, weakOnly, 0, 0);
        var array = w.ObjectArray(arrClass, 0, leaf, 0);
        var h = w.Instance(holder, leaf, array, weakRef, 42, 1);
        w.Root(HprofRootKind.JavaFrame, h);
        foreach (var kind in AllRootKinds) w.Root(kind, bytes);
        return new Sample(w.ToArray(), h, leaf, weakRef, weakOnly, array, bytes);
    }

    [Theory]
    [InlineData(4, true)]
    [InlineData(4, false)]
    [InlineData(8, true)]
    [InlineData(8, false)]
    public void Reader_builds_the_same_graph_for_4_and_8_byte_ids_and_both_heap_dump_record_kinds(int idSize, bool segments)
    {
        var s = BuildSample(idSize, segments);
        using var g = HeapGraph.Build(HprofFile.FromBytes(s.Bytes));
        Assert.Equal(idSize, g.File.IdSize);
        Assert.Equal(6 + 6, g.ObjectCount); // 6 class objects + 6 heap objects
        int h = g.FindObjectIndex(s.Holder), leaf = g.FindObjectIndex(s.Leaf), arr = g.FindObjectIndex(s.Array);
        Assert.Equal("app.Holder", g.GetClass(h).Name);
        Assert.Equal("java.lang.Object[]", g.GetClass(arr).Name);
        Assert.Equal("byte[]", g.GetClass(g.FindObjectIndex(s.Bytes16)).Name);
        Assert.Equal(42, g.ReadPrimitiveField(h, "n"));
        Assert.Equal(1, g.ReadPrimitiveField(h, "flag"));
        Assert.Equal(leaf, g.ReadObjectField(h, "child"));
        Assert.Equal(leaf, g.ReadArrayElement(arr, 1));
        Assert.Equal(-1, g.ReadArrayElement(arr, 0));
        Assert.Equal("child", g.DescribeEdge(h, leaf));
        Assert.Equal("[1]", g.DescribeEdge(arr, leaf));
        Assert.Equal([leaf, arr, g.FindObjectIndex(s.Weak)], g.GetReferences(h).ToArray());
        // The referent is not a strong edge, but can be read.
        Assert.Empty(g.GetReferences(g.FindObjectIndex(s.Weak)).ToArray());
        Assert.Equal(g.FindObjectIndex(s.WeakOnly), g.GetReferent(g.FindObjectIndex(s.Weak)));
        var kinds = g.Roots.Where(r => r.Object == g.FindObjectIndex(s.Bytes16)).Select(r => r.Kind).ToHashSet();
        Assert.True(AllRootKinds.All(kinds.Contains), "every GC root kind is read");
        Assert.Throws<KeyNotFoundException>(() => g.FindObjectIndex(12345));
        Assert.Equal(-1, g.FindObjectIndexOrNone(12345));
    }

    [Fact]
    public void Shortest_path_skips_referents_unless_asked_and_names_fields()
    {
        var s = BuildSample(8, true);
        using var g = HeapGraph.Build(HprofFile.FromBytes(s.Bytes));
        int weakOnly = g.FindObjectIndex(s.WeakOnly);
        Assert.Null(PathFinder.FromGcRoots(g, weakOnly));
        var path = PathFinder.FromGcRoots(g, weakOnly, followReferents: true);
        Assert.NotNull(path);
        var steps = PathFinder.Describe(g, path);
        Assert.Equal(["app.Holder", "java.lang.ref.WeakReference", "app.Leaf"], steps.Select(x => x.ClassName));
        Assert.Equal([null, "weak", "referent"], steps.Select(x => x.Field));
        Assert.Contains("Java local variable", steps[0].Root, StringComparison.Ordinal);
    }

    [Fact]
    public void Retained_sizes_follow_domination_and_exclude_weakly_held_objects()
    {
        var s = BuildSample(8, true);
        using var g = HeapGraph.Build(HprofFile.FromBytes(s.Bytes));
        var d = DominatorTree.Compute(g);
        int h = g.FindObjectIndex(s.Holder), leaf = g.FindObjectIndex(s.Leaf), arr = g.FindObjectIndex(s.Array), bytes = g.FindObjectIndex(s.Bytes16);
        int weak = g.FindObjectIndex(s.Weak), weakOnly = g.FindObjectIndex(s.WeakOnly);
        // The leaf is reached from the holder and from the array the holder dominates: the holder dominates both.
        Assert.Equal(h, d.GetImmediateDominator(leaf));
        Assert.Equal(h, d.GetImmediateDominator(arr));
        // The byte[] is itself a root (every kind), so only the super-root dominates it.
        Assert.Equal(DominatorTree.SuperRoot, d.GetImmediateDominator(bytes));
        Assert.False(d.IsReachable(weakOnly));
        long expected = g.GetShallowSize(h) + g.GetShallowSize(leaf) + g.GetShallowSize(arr) + g.GetShallowSize(weak);
        Assert.Equal(expected, d.GetRetainedSize(h));
        Assert.Equal(g.GetShallowSize(weakOnly), d.GetRetainedSize(weakOnly));
    }
}
