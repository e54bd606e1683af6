using Apm.Influx;

namespace Apm.Testing;

/// <summary>
/// A real influxd for a test: <see cref="LocalInfluxServer"/> on free 127.0.0.1 ports with its data in a new temp
/// directory, which Dispose deletes after stopping the server.
/// </summary>
public sealed class InfluxServer : IAsyncDisposable, IDisposable
{
    private InfluxServer(LocalInfluxServer server) => Server = server;

    /// <summary>The running server (Stop/StartAgain for fault tests).</summary>
    public LocalInfluxServer Server { get; }

    /// <summary>HTTP API URL.</summary>
    public Uri Url => Server.Url;

    /// <summary>Starts influxd in a fresh temp directory; throws with the log when it does not come up.</summary>
    public static async Task<InfluxServer> StartAsync()
    {
        var dir = Path.Combine(Path.GetTempPath(), "apm-influx-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            return new InfluxServer(await LocalInfluxServer.StartAsync(dir).ConfigureAwait(false));
        }
        catch
        {
            TryDelete(dir);
            throw;
        }
    }

    /// <summary>Options pointing at this server; each test should use its own database name.</summary>
    public InfluxOptions Options(string database) => new() { Url = Url, Database = database };

    /// <summary>Takes the server away for <paramref name="downtime"/> (SIGTERM) and brings it back on the same port with the same data.</summary>
    public async Task OutageAsync(TimeSpan downtime)
    {
        await Server.StopAsync().ConfigureAwait(false);
        await Task.Delay(downtime).ConfigureAwait(false);
        await Server.StartAgainAsync().ConfigureAwait(false);
    }

    /// <summary>Stops the server and deletes its directory.</summary>
    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync().ConfigureAwait(false);
        TryDelete(Server.Directory);
    }

    /// <summary>Stops the server and deletes its directory.</summary>
    public void Dispose()
    {
        Server.Dispose();
        TryDelete(Server.Directory);
    }

    private static void TryDelete(string dir)
    {
        try
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
