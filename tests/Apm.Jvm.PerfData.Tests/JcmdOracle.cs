using System.Globalization;
using Apm.Testing;

namespace Apm.Jvm.PerfData.Tests;

/// <summary>The counters as `jcmd &lt;pid&gt; PerfCounter.print` shows them: the independent oracle.</summary>
internal static class JcmdOracle
{
    /// <summary>name -> (isString, text). Strings are unquoted.</summary>
    public static Dictionary<string, (bool IsString, string Value)> PerfCounters(JavaFixture jvm)
    {
        var result = new Dictionary<string, (bool, string)>(StringComparer.Ordinal);
        foreach (var line in jvm.Jcmd("PerfCounter.print").Split('\n'))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) continue; // the "<pid>:" header line
            var name = line[..eq];
            var value = line[(eq + 1)..].TrimEnd('\r');
            var quoted = value.Length >= 2 && value[0] == '"' && value[^1] == '"';
            result[name] = (quoted, quoted ? value[1..^1] : value);
        }

        return result;
    }

    public static long Long(this Dictionary<string, (bool IsString, string Value)> counters, string name) =>
        long.Parse(counters[name].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
}
