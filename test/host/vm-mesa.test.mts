// The Mesa provisioning of the interop tests (lib/vm/mesa.ts): pure parts, no network.
import { expect } from 'chai';
import { renderSourcesList } from '../../dist/vm/apt.js';
import { fixIcd, MESA_APT, mesaTreeName, parseSimulatedInstall } from '../../dist/vm/mesa.js';

const SIMULATED = `NOTE: This is only a simulation!
Inst libdrm2 [2.4.114-1+b1] (2.4.123-1~bpo12+1 Debian Backports:oldstable-backports [amd64])
Inst mesa-libgallium (25.0.7-2~bpo12+1 Debian Backports:oldstable-backports [amd64])
Inst libvulkan1 (1.3.239.0-1 Debian:12.15/oldstable [amd64])
Inst mesa-vulkan-drivers (25.0.7-2~bpo12+1 Debian Backports:oldstable-backports [amd64])
Conf libdrm2 (2.4.123-1~bpo12+1 Debian Backports:oldstable-backports [amd64])
`;

describe('vm: Mesa for the interop tests', () => {
  it('reads what apt-get -s would install, upgrades included', () => {
    expect(parseSimulatedInstall(SIMULATED)).to.deep.equal([
      { name: 'libdrm2', version: '2.4.123-1~bpo12+1' },
      { name: 'mesa-libgallium', version: '25.0.7-2~bpo12+1' },
      { name: 'libvulkan1', version: '1.3.239.0-1' },
      { name: 'mesa-vulkan-drivers', version: '25.0.7-2~bpo12+1' },
    ]);
  });

  it('names a tree by the Mesa version and the whole package set', () => {
    const pkgs = parseSimulatedInstall(SIMULATED);
    const name = mesaTreeName(pkgs);
    expect(name).to.match(/^25\.0\.7-2_bpo12\+1-[0-9a-f]{12}$/);
    expect(mesaTreeName([...pkgs].reverse())).to.equal(name);
    expect(mesaTreeName(pkgs.slice(1))).to.not.equal(name);
    expect(() => mesaTreeName(pkgs.slice(0, 3))).to.throw(/mesa-vulkan-drivers/);
  });

  it("points lavapipe's ICD manifest at the unpacked library", () => {
    const fixed = JSON.parse(fixIcd('{"ICD":{"api_version":"1.4.305","library_path":"libvulkan_lvp.so"},"file_format_version":"1.0.0"}', '/c/mesa/x/usr/lib/x86_64-linux-gnu'));
    expect(fixed).to.deep.equal({
      ICD: { api_version: '1.4.305', library_path: '/c/mesa/x/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so' },
      file_format_version: '1.0.0',
    });
  });

  it('has its own sources list: Debian 12 and its backports only', () => {
    const list = renderSourcesList({ main: 'http://example.org/debian', security: 'http://example.org/debian-security' }, '/k.gpg', MESA_APT);
    expect(list.split('\n').filter((l) => l.startsWith('deb '))).to.deep.equal([
      'deb [signed-by=/k.gpg] http://example.org/debian bookworm main',
      'deb [signed-by=/k.gpg] http://example.org/debian bookworm-backports main',
    ]);
  });
});
