using System.Text.Json;
using System.Text.RegularExpressions;
using Apm.Aggregator;

namespace Apm.EndToEnd.Tests;

/// <summary>The Grafana dashboard in dashboards/ only queries measurements the aggregator writes.</summary>
public sealed partial class DashboardDefinitionTests
{
    [Fact]
    public void Every_grafana_query_reads_a_measurement_the_aggregator_writes()
    {
        var path = Path.Combine(RepositoryRoot(), "dashboards", "grafana", "apm-jvm.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var known = SamplePoints.Metrics.Append(SamplePoints.InfoMeasurement).ToHashSet(StringComparer.Ordinal);
        var queries = doc.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("query").GetString()!)
            .Append(doc.RootElement.GetProperty("templating").GetProperty("list")[1].GetProperty("query").GetString()!)
            .ToList();
        Assert.True(queries.Count >= 8);
        foreach (var q in queries)
        {
            var m = FromClause().Match(q);
            Assert.True(m.Success, "no FROM in " + q);
            Assert.Contains(m.Groups[1].Value, known);
        }
    }

    internal static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Apm.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Apm.sln not found above " + AppContext.BaseDirectory);
    }

    [GeneratedRegex("FROM \"([^\"]+)\"")]
    private static partial Regex FromClause();
}
