using System.Net;
using System.Net.Sockets;

namespace Apm.Testing;

/// <summary>Free TCP ports on 127.0.0.1, for servers that a test starts.</summary>
public static class FreePort
{
    /// <summary>Asks the OS for a port that is free now (a tiny race with other processes remains).</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
