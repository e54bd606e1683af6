using System.Globalization;

namespace Apm.Benchmarks;

/// <summary>
/// Peak memory of this process while it runs, split by kind (Linux /proc/self/status): private anonymous pages
/// (RssAnon: the managed heap, native allocations; what the process really costs), file-backed pages (RssFile: the
/// mapped dump, clean page-cache pages the kernel can drop at any time) and the kernel's exact peak of both
/// together (VmHWM, reset through /proc/self/clear_refs at start). RssAnon and RssFile are sampled every 2 ms, so
/// a shorter spike can be missed; VmHWM cannot miss one.
/// </summary>
internal sealed class MemorySampler : IDisposable
{
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _anon, _file, _managed;

    /// <summary>RssAnon and RssFile when sampling started (the runtime, its libraries, earlier work).</summary>
    public (long AnonBytes, long FileBytes) Before { get; private set; }

    private MemorySampler()
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = "memory sampler" };
    }

    public static MemorySampler Start()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
        }
        catch (IOException)
        {
            // Old kernels: VmHWM then covers the whole process lifetime, which only overstates the peak.
        }
        catch (UnauthorizedAccessException)
        {
        }

        var s = new MemorySampler();
        s.Sample();
        s.Before = (s._anon, s._file);
        s._thread.Start();
        return s;
    }

    /// <summary>Stops sampling and returns the peaks in bytes.</summary>
    public (long AnonBytes, long FileBytes, long HwmBytes, long ManagedBytes) Stop()
    {
        _stop = true;
        _thread.Join();
        Sample();
        return (_anon, _file, Read()["VmHWM"], _managed);
    }

    public void Dispose()
    {
        if (!_stop) Stop();
    }

    private void Loop()
    {
        while (!_stop)
        {
            Sample();
            Thread.Sleep(2);
        }
    }

    private void Sample()
    {
        var v = Read();
        _anon = Math.Max(_anon, v["RssAnon"]);
        _file = Math.Max(_file, v["RssFile"]);
        _managed = Math.Max(_managed, GC.GetTotalMemory(false));
    }

    private static Dictionary<string, long> Read()
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal) { ["RssAnon"] = 0, ["RssFile"] = 0, ["VmHWM"] = 0 };
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            int colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0) continue;
            var key = line[..colon];
            if (!result.ContainsKey(key)) continue;
            var parts = line[(colon + 1)..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            result[key] = long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024;
        }

        return result;
    }
}
