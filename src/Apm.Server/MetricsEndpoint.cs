using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Apm.Server;

/// <summary>
/// <c>GET /metrics</c>: every counter of the roles this process runs (the same as /healthz's <c>counters</c>) in the
/// Prometheus text exposition format, so Prometheus scrapes each Apm process directly. A counter named
/// <c>aggregator.points_written</c> becomes <c>apm_aggregator_points_written</c>.
/// </summary>
public static class MetricsEndpoint
{
    /// <summary>Maps /metrics (open like /healthz: counters carry no JVM data).</summary>
    public static IEndpointRouteBuilder MapApmMetrics(this IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", (IEnumerable<ICounterSource> sources) => Results.Text(Render(sources), "text/plain; version=0.0.4; charset=utf-8"));
        return app;
    }

    /// <summary>The exposition text; names sorted, one untyped sample per counter.</summary>
    public static string Render(IEnumerable<ICounterSource> sources)
    {
        ArgumentNullException.ThrowIfNull(sources);
        var counters = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (var source in sources)
        {
            foreach (var (name, value) in source.ReadCounters()) counters[Name(name)] = value;
        }

        var sb = new StringBuilder();
        foreach (var (name, value) in counters)
        {
            sb.Append("# TYPE ").Append(name).Append(" untyped\n");
            sb.Append(name).Append(' ').Append(value.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }

        return sb.ToString();
    }

    /// <summary>Prometheus metric name: <c>apm_</c> plus the counter name with every character outside [a-zA-Z0-9_] as '_'.</summary>
    public static string Name(string counter)
    {
        ArgumentNullException.ThrowIfNull(counter);
        var sb = new StringBuilder("apm_", counter.Length + 4);
        foreach (var c in counter) sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        return sb.ToString();
    }
}
