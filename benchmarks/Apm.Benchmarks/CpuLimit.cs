using System.Globalization;

namespace Apm.Benchmarks;

/// <summary>
/// A CPU control group that caps the processes in it at a number of cores (CFS bandwidth: quota per 100 ms period),
/// as a container or a small VM would. Cgroup v1 (<c>/sys/fs/cgroup/cpu</c>) and v2 (<c>cpu.max</c>) are both handled;
/// creating one needs write access to the hierarchy (root, in practice).
/// </summary>
internal sealed class CpuLimit : IDisposable
{
    private const string V1Root = "/sys/fs/cgroup/cpu";
    private const string V2Root = "/sys/fs/cgroup";
    private const int PeriodMicros = 100_000;
    private readonly bool _v2;

    private CpuLimit(string directory, bool v2, double cores)
    {
        Directory = directory;
        _v2 = v2;
        Cores = cores;
    }

    /// <summary>The group's directory.</summary>
    public string Directory { get; }

    /// <summary>The file a process writes its pid to in order to join.</summary>
    public string ProcsFile => Path.Combine(Directory, "cgroup.procs");

    /// <summary>The cap, in cores.</summary>
    public double Cores { get; }

    /// <summary>Why no group can be made here, or null when one can.</summary>
    public static string? Unavailable()
    {
        if (File.Exists(Path.Combine(V1Root, "cpu.cfs_quota_us"))) return Writable(V1Root) ? null : $"{V1Root} is not writable (run as root)";
        var controllers = Path.Combine(V2Root, "cgroup.controllers");
        if (File.Exists(controllers) && File.ReadAllText(controllers).Split(' ', '\n').Contains("cpu"))
            return Writable(V2Root) ? null : $"{V2Root} is not writable (run as root)";
        return "no cgroup CPU controller is mounted (neither /sys/fs/cgroup/cpu nor cgroup v2 with the cpu controller)";
    }

    /// <summary>Creates a group named <paramref name="name"/> capped at <paramref name="cores"/>.</summary>
    public static CpuLimit Create(string name, double cores)
    {
        if (!(cores > 0.01)) throw new ArgumentOutOfRangeException(nameof(cores), cores, "the cap must be above 0.01 cores");
        if (Unavailable() is { } why) throw new InvalidOperationException("cannot cap CPU: " + why);
        var v2 = !File.Exists(Path.Combine(V1Root, "cpu.cfs_quota_us"));
        var dir = Path.Combine(v2 ? V2Root : V1Root, name);
        System.IO.Directory.CreateDirectory(dir);
        var quota = ((long)(cores * PeriodMicros)).ToString(CultureInfo.InvariantCulture);
        if (v2)
        {
            File.WriteAllText(Path.Combine(dir, "cpu.max"), quota + " " + PeriodMicros.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            File.WriteAllText(Path.Combine(dir, "cpu.cfs_period_us"), PeriodMicros.ToString(CultureInfo.InvariantCulture));
            File.WriteAllText(Path.Combine(dir, "cpu.cfs_quota_us"), quota);
        }

        return new CpuLimit(dir, v2, cores);
    }

    /// <summary>How many 100 ms periods the group has run in and in how many it hit its cap.</summary>
    public (long Periods, long Throttled) Throttling()
    {
        long periods = 0, throttled = 0;
        foreach (var line in File.ReadAllLines(Path.Combine(Directory, "cpu.stat")))
        {
            var parts = line.Split(' ');
            if (parts.Length != 2 || !long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)) continue;
            if (parts[0] == "nr_periods") periods = v;
            else if (parts[0] == "nr_throttled") throttled = v;
        }

        return (periods, throttled);
    }

    /// <summary>Removes the group (its processes must have exited; a group that still has some is left).</summary>
    public void Dispose()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            try
            {
                System.IO.Directory.Delete(Directory);
                return;
            }
            catch (IOException)
            {
                // Busy: an exiting process may still be listed for a moment.
                Thread.Sleep(100);
            }
        }

        Console.Error.WriteLine($"could not remove the control group {Directory}{(_v2 ? "" : " (cgroup v1)")}");
    }

    private static bool Writable(string dir)
    {
        var probe = Path.Combine(dir, "apm-probe-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        try
        {
            System.IO.Directory.CreateDirectory(probe);
            System.IO.Directory.Delete(probe);
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
