using Apm.Aggregator;
using Apm.Dashboard.Panels;

namespace Apm.Dashboard.Tests;

/// <summary>dashboards/panels: the files the pages render read only what the aggregator writes, and bad files fail clearly.</summary>
public sealed class PanelDefinitionTests
{
    /// <summary>Written by the aggregator for the old-generation-after-GC panel (issue 3's contract).</summary>
    private static readonly string[] ExtraMetrics = ["jvm.memory.used_after_last_gc"];

    [Fact]
    public void The_repository_panels_load_and_query_only_measurements_the_aggregator_writes()
    {
        var dir = Path.Combine(RepositoryRoot(), "dashboards", "panels");
        var defs = PanelDefinitions.Load(dir);
        var known = SamplePoints.Metrics.Concat(ExtraMetrics).ToHashSet(StringComparer.Ordinal);
        var metrics = defs.Jvm.Panels.SelectMany(p => p.Series.Append(p.Max).OfType<SeriesDefinition>()).Select(s => s.Metric)
            .Concat(defs.Fleet.Columns.Select(c => c.Metric)).Concat(defs.Fleet.Columns.Select(c => c.Max?.Metric).OfType<string>())
            .Append(defs.Fleet.Sparkline!.Metric).ToList();
        Assert.True(metrics.Count >= 15);
        Assert.All(metrics, m => Assert.Contains(m, known));

        // The embedded copy (what a host uses without Apm:Dashboard:PanelsDirectory) is the repository's.
        var embedded = PanelDefinitions.Load(null);
        Assert.Equal(defs.Jvm.Panels.Select(p => p.Id), embedded.Jvm.Panels.Select(p => p.Id));
        Assert.Equal(defs.Fleet.Columns.Select(c => c.Id), embedded.Fleet.Columns.Select(c => c.Id));
    }

    [Theory]
    [InlineData("""{"panels":[{"id":"a","title":"A","series":[{"metric":"jvm.memory.used\"; DROP"}]}]}""", "is not a metric name")]
    [InlineData("""{"panels":[{"id":"a","title":"A","series":[]}]}""", "has no series")]
    [InlineData("""{"panels":[{"id":"a","series":[{"metric":"jvm.x"}]},{"id":"a","series":[{"metric":"jvm.x"}]}]}""", "empty or repeated")]
    [InlineData("""{"panels":[{"id":"a","series":[{"metric":"jvm.x","window":"soon"}]}]}""", "is not a duration")]
    [InlineData("""{"panels": [""", "not valid panel JSON")]
    public void A_broken_panel_file_is_refused_with_its_name_and_the_reason(string jvmJson, string reason)
    {
        var dir = Directory.CreateTempSubdirectory("apm-panels-").FullName;
        try
        {
            File.Copy(Path.Combine(RepositoryRoot(), "dashboards", "panels", "fleet.json"), Path.Combine(dir, "fleet.json"));
            File.WriteAllText(Path.Combine(dir, "jvm.json"), jvmJson);
            var ex = Assert.Throws<InvalidDataException>(() => PanelDefinitions.Load(dir));
            Assert.StartsWith("jvm.json", ex.Message, StringComparison.Ordinal);
            Assert.Contains(reason, ex.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(null, "By", "–")]
    [InlineData(512.0, "By", "512 B")]
    [InlineData(1536.0, "By", "1.5 KiB")]
    [InlineData(64.0 * 1024 * 1024, "By", "64 MiB")]
    [InlineData(0.0123, "1", "1.2 %")]
    [InlineData(0.5, "1", "50 %")]
    [InlineData(12345.0, "{object}", "12,345")]
    [InlineData(0.25, "{collection}/s", "0.25 collection/s")]
    [InlineData(0.004, "s", "4 ms")]
    public void Values_are_formatted_with_their_unit(double? value, string unit, string expected) =>
        Assert.Equal(expected, Units.Format(value, unit));

    internal static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Apm.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Apm.sln not found above " + AppContext.BaseDirectory);
    }
}
