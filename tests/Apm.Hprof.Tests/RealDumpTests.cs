using System.Globalization;
using Apm.Hprof.Analysis;
using Apm.Hprof.Graph;
using Apm.Hprof.Reader;
using Apm.Hprof.Report;
using Apm.Testing;

namespace Apm.Hprof.Tests;

/// <summary>Dumps taken with jcmd from real fixture JVMs.</summary>
public sealed class RealDumpTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("apm-hprof-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    internal static async Task<string> DumpAsync(string mainClass, int count, string dir)
    {
        using var jvm = JavaFixture.Start(mainClass, ["-Xmx256m"], [count.ToString(CultureInfo.InvariantCulture)]);
        await jvm.WaitForOutputAsync("READY", TimeSpan.FromMinutes(2));
        var path = Path.Combine(dir, mainClass + ".hprof");
        jvm.Jcmd("GC.heap_dump", path);
        return path;
    }

    private static int HistogramCount(string histogram, string className) =>
        histogram.Split('\n').Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(p => p.Length >= 4 && p[3] == className).Select(p => int.Parse(p[1], CultureInfo.InvariantCulture)).FirstOrDefault();

    [Fact]
    public async Task CancelTimer_dump_yields_timer_retained_finalizable_with_classes_and_a_path_from_the_timer_thread()
    {
        const int statements = 20_000;
        string histogram;
        string path;
        using (var jvm = JavaFixture.Start("CancelTimerLeak", ["-Xmx256m"], [statements.ToString(CultureInfo.InvariantCulture)]))
        {
            await jvm.WaitForOutputAsync("READY", TimeSpan.FromMinutes(2));
            path = Path.Combine(_dir, "ct.hprof");
            jvm.Jcmd("GC.heap_dump", path);
            histogram = jvm.Jcmd("GC.class_histogram");
        }

        var result = HeapTriage.Run(path);
        var f = Assert.Single(result.Findings, x => x.Kind == FindingKinds.TimerRetainedFinalizable);
        const string statement = "CancelTimerLeak$CancelTimerLeakStatement";
        Assert.Equal(statement, f.Classes[0]);
        Assert.Equal(statement + "$1", f.Classes[1]);
        // jcmd's histogram is the oracle for how many statements the heap holds.
        // The timer thread purges cancelled tasks that reach the head of its queue when it wakes, so slightly fewer
        // than all statements stay; the histogram after the dump says how many.
        Assert.Equal(HistogramCount(histogram, statement), f.Count);
        Assert.InRange(f.Count, 1000, statements);
        Assert.True(f.RetainedBytes >= statements * 24L, "each statement retains at least its own bytes");

        Assert.StartsWith("java.util.TimerThread \"CancelTimerLeak-timer\"", f.Path[0].ClassName, StringComparison.Ordinal);
        Assert.Contains("thread object", f.Path[0].Root, StringComparison.Ordinal);
        Assert.Equal(["queue", "queue"], f.Path.Skip(1).Take(2).Select(p => p.Field));
        Assert.Equal(["java.util.TaskQueue", "java.util.TimerTask[]"], f.Path.Skip(1).Take(2).Select(p => p.ClassName));
        Assert.Matches(@"^\[\d+\]$", f.Path[3].Field);
        Assert.Equal(statement + "$1", f.Path[3].ClassName);
        Assert.Equal(statement, f.Path[^1].ClassName);

        var timers = Assert.Single(result.Timers, t => t.ThreadName == "CancelTimerLeak-timer");
        // Every statement's cancelled task, plus the fixture's one live task at the head of the queue (CancelTimerLeak$1).
        Assert.Equal(HistogramCount(histogram, statement + "$1") + HistogramCount(histogram, "CancelTimerLeak$1"), timers.Tasks);
        Assert.Equal(1, HistogramCount(histogram, "CancelTimerLeak$1"));
        Assert.Equal(timers.Tasks - 1, timers.Cancelled);
        var fin = Assert.Single(result.Finalizers, r => r.ReferentClass == statement);
        Assert.Equal(f.Count, fin.Registered);
        Assert.Contains(result.Findings, x => x.Kind == FindingKinds.Finalizers);
        Assert.Contains(result.Findings, x => x.Kind == FindingKinds.LeakSuspect && x.Classes.Contains("java.util.TimerTask[]"));

        // Threads with their stacks: the fixture's main thread sleeps in CancelTimerLeak.main (args is a local), and
        // the timer thread waits in TimerThread.mainLoop holding its TaskQueue (the synchronized block's local).
        var main = Assert.Single(result.Threads, t => t.Name == "main");
        Assert.Equal("TIMED_WAITING", main.State);
        Assert.Equal(("java.lang.Thread", "sleep"), (main.Frames[0].ClassName, main.Frames[0].Method));
        var mainFrame = Assert.Single(main.Frames, fr => fr.ClassName == "CancelTimerLeak" && fr.Method == "main");
        Assert.Equal("CancelTimerLeak.java", mainFrame.SourceFile);
        Assert.True(mainFrame.Line > 0, "a source line");
        Assert.Contains(mainFrame.Locals, l => l.ClassName == "java.lang.String[]");
        var timerThread = Assert.Single(result.Threads, t => t.Name == "CancelTimerLeak-timer");
        Assert.Equal(timers.ThreadState, timerThread.State);
        var loop = Assert.Single(timerThread.Frames, fr => fr.ClassName == "java.util.TimerThread" && fr.Method == "mainLoop");
        Assert.Contains(loop.Locals, l => l.ClassName == "java.util.TaskQueue");

        using var json = new MemoryStream();
        TriageReport.WriteJson(result, json);
        using var doc = System.Text.Json.JsonDocument.Parse(json.ToArray());
        var jsonMain = Assert.Single(doc.RootElement.GetProperty("threads").EnumerateArray(), t => t.GetProperty("name").GetString() == "main");
        Assert.Contains(jsonMain.GetProperty("frames").EnumerateArray(), fr => fr.GetProperty("method").GetString() == "main" && fr.GetProperty("locals").GetArrayLength() > 0);
        Assert.Contains("CancelTimerLeak.main (CancelTimerLeak.java:", TriageReport.ToHtml(result), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Healthy_finalizers_dump_yields_no_timer_retained_finalizable_finding()
    {
        var path = await DumpAsync("HealthyFinalizers", 20_000, _dir);
        var result = HeapTriage.Run(path);
        Assert.DoesNotContain(result.Findings, x => x.Kind == FindingKinds.TimerRetainedFinalizable);
        Assert.DoesNotContain(result.Timers, t => t.Cancelled > 0);
        Assert.True(result.Summary.Objects > 1000, "the dump was read");
    }

    [Fact]
    public async Task Two_threads_build_the_same_graph_and_dominator_tree_as_one()
    {
        var dump = await DumpAsync("CancelTimerLeak", 2000, _dir);
        using var one = HeapGraphBuilder.Build(HprofFile.Open(dump), null, default, parallel: false);
        using var two = HeapGraphBuilder.Build(HprofFile.Open(dump), null, default, parallel: true);
        Assert.Equal(one.ObjectCount, two.ObjectCount);
        Assert.Equal(one.ReferenceCount, two.ReferenceCount);
        Assert.Equal(one.DanglingReferences, two.DanglingReferences);
        Assert.Equal(one.Roots, two.Roots);
        Assert.Equal(one.Classes.Select(c => (c.Name, c.InstanceCount, c.ShallowSizeTotal)), two.Classes.Select(c => (c.Name, c.InstanceCount, c.ShallowSizeTotal)));
        Assert.Equal(one.ReferencePairs.References.ToArray(), two.ReferencePairs.References.ToArray());
        Assert.Equal(one.ReferencePairs.Referents.ToArray(), two.ReferencePairs.Referents.ToArray());
        for (int i = 0; i < one.ObjectCount; i++)
        {
            Assert.Equal(one.GetId(i), two.GetId(i));
            Assert.Equal(one.GetOffset(i), two.GetOffset(i));
            Assert.Equal(one.GetClassIndex(i), two.GetClassIndex(i));
            Assert.Equal(one.GetShallowSize(i), two.GetShallowSize(i));
            Assert.True(one.GetReferences(i).SequenceEqual(two.GetReferences(i)), FormattableString.Invariant($"references of object {i}"));
        }

        var d1 = DominatorTree.Compute(one);
        var d2 = DominatorTree.Compute(two);
        for (int i = 0; i < one.ObjectCount; i++) Assert.Equal(d1.GetRetainedSize(i), d2.GetRetainedSize(i));
        Assert.True(one.ObjectCount > 10_000, "the dump was read");
    }

    [Theory]
    [InlineData("IdleService", 0)]
    [InlineData("CancelTimerLeak", 2000)]
    public async Task Retained_sizes_agree_with_VisualVM_heap_library_for_every_class(string fixture, int count)
    {
        const string modules = "/usr/share/visualvm/visualvm/modules/";
        var jars = new[] { "org-graalvm-visualvm-lib-jfluid-heap.jar", "org-graalvm-visualvm-lib-profiler-utilities.jar" }.Select(j => modules + j).ToArray();
        Assert.True(jars.All(File.Exists), "install Debian's visualvm package (apt-get install -y visualvm): it is the retained-size oracle");
        var cp = string.Join(':', jars);
        var classes = Path.Combine(_dir, "oracle");
        Directory.CreateDirectory(classes);
        JavaFixture.RunTool("javac", ["-cp", cp, "-d", classes, Path.Combine(AppContext.BaseDirectory, "oracle", "HprofOracle.java")]);
        var dump = await DumpAsync(fixture, count, _dir);
        var oracle = JavaFixture.RunTool("java", ["-cp", cp + ":" + classes, "HprofOracle", dump, "25"], TimeSpan.FromMinutes(5))
            .Split('\n').Select(l => l.Trim().Split(' ')).ToList();

        using var g = HeapGraph.Build(HprofFile.Open(dump));
        // VisualVM's two rules (Finalizer referents and referrers without a GC-root path) are documented in
        // docs/heap-triage.md; with them every class total must match exactly.
        var d = DominatorTree.ComputeVisualVmCompatible(g);
        var byClass = d.RetainedSizeByClass(g);
        int compared = 0;
        foreach (var o in oracle.Where(o => o[0] == "OBJ" && o[2] != "java.lang.Class"))
        {
            int i = g.FindObjectIndex(long.Parse(o[1], CultureInfo.InvariantCulture));
            Assert.Equal(o[2], g.GetClass(i).Name);
            Assert.Equal(long.Parse(o[3], CultureInfo.InvariantCulture), g.GetShallowSize(i));
            Assert.Equal(long.Parse(o[4], CultureInfo.InvariantCulture), d.GetRetainedSize(i));
            compared++;
        }

        Assert.True(compared >= 20, "compared the biggest objects");
        var rows = oracle.Where(o => o[0] == "CLS").ToList();
        Assert.True(rows.Count > 100, "VisualVM listed the classes");
        var mismatches = new List<string>();
        foreach (var o in rows)
        {
            var c = g.FindClassByName(o[1]);
            Assert.NotNull(c);
            Assert.Equal(int.Parse(o[2], CultureInfo.InvariantCulture), c.InstanceCount);
            Assert.Equal(long.Parse(o[3], CultureInfo.InvariantCulture), c.ShallowSizeTotal);
            if (long.Parse(o[4], CultureInfo.InvariantCulture) != byClass[c.Index]) mismatches.Add($"{o[1]}: VisualVM {o[4]}, ours {byClass[c.Index]}");
        }

        Assert.Empty(mismatches);
        if (fixture == "CancelTimerLeak")
        {
            // The rules matter here: plain dominators (statements retained by their timer tasks) disagree with VisualVM.
            var plain = DominatorTree.Compute(g).RetainedSizeByClass(g);
            var statement = g.FindClassByName("CancelTimerLeak$CancelTimerLeakStatement$1")!;
            var row = rows.Single(o => o[1] == statement.Name);
            Assert.NotEqual(long.Parse(row[4], CultureInfo.InvariantCulture), plain[statement.Index]);
        }
    }
}
