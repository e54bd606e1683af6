using System.Globalization;

namespace Apm.Collector;

/// <summary>Facts about a process read from /proc, used to give each JVM run a stable id.</summary>
internal static class ProcessInfo
{
    private static long? _bootTimeUnixMs;

    /// <summary>
    /// Start time of <paramref name="pid"/> in Unix milliseconds (10 ms resolution), from /proc/&lt;pid&gt;/stat
    /// field 22 and /proc/stat's btime; null when the process is gone or unreadable.
    /// </summary>
    public static long? StartTimeUnixMs(string procRoot, int pid)
    {
        try
        {
            var stat = File.ReadAllText(Path.Combine(procRoot, pid.ToString(CultureInfo.InvariantCulture), "stat"));
            // The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
            var close = stat.LastIndexOf(')');
            if (close < 0) return null;
            var fields = stat[(close + 2)..].Split(' ');
            // fields[0] is field 3 (state); field 22 (starttime) is fields[19].
            if (fields.Length < 20 || !long.TryParse(fields[19], NumberStyles.None, CultureInfo.InvariantCulture, out var ticks)) return null;
            var boot = BootTimeUnixMs(procRoot);
            if (boot is null) return null;
            const long clockTicksPerSecond = 100; // sysconf(_SC_CLK_TCK) is 100 on every Linux ABI .NET runs on.
            return boot.Value + (ticks * 1000 / clockTicksPerSecond);
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static long? BootTimeUnixMs(string procRoot)
    {
        if (_bootTimeUnixMs is { } cached) return cached;
        foreach (var line in File.ReadLines(Path.Combine(procRoot, "stat")))
        {
            if (line.StartsWith("btime ", StringComparison.Ordinal) &&
                long.TryParse(line.AsSpan(6).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var secs))
            {
                _bootTimeUnixMs = secs * 1000;
                return _bootTimeUnixMs;
            }
        }

        return null;
    }
}
