// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title LedgerAnchor: roots of fhir-ledger's Merkle log, by tree size.
/// @notice The log is an RFC 9162 Merkle tree of salted SHA-256 leaves, one per stored FHIR
/// resource version. Only roots come here: one transaction anchors thousands of versions.
/// A root, once recorded for a tree size, can never be replaced.
/// @dev Gas per anchor is kept near the floor (21,000 + one new storage slot + one log):
/// roots live in a single mapping, the event carries the size as its only indexed topic, and
/// nothing else is written. The latest anchored size is read from the events, not stored.
contract LedgerAnchor {
    /// Manages the set of anchoring accounts.
    address public owner;

    /// Accounts allowed to record roots.
    mapping(address => bool) public isAnchorer;

    /// Root of the first `treeSize` leaves of the log; zero when not anchored.
    mapping(uint256 => bytes32) private rootByTreeSize;

    event RootAnchored(uint256 indexed treeSize, bytes32 root);
    event AnchorerAdded(address indexed account);
    event AnchorerRemoved(address indexed account);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner(address caller);
    error NotAnchorer(address caller);
    error TreeSizeAlreadyAnchored(uint256 treeSize, bytes32 root);
    error EmptyTree();
    error ZeroRoot();
    error ZeroAddress();

    /// The deploying account owns the contract and may anchor.
    constructor() {
        owner = msg.sender;
        emit OwnershipTransferred(address(0), msg.sender);
        isAnchorer[msg.sender] = true;
        emit AnchorerAdded(msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    /// Records the root of the first `treeSize` leaves; refused if that size already has one.
    function anchor(uint256 treeSize, bytes32 root) external {
        if (!isAnchorer[msg.sender]) revert NotAnchorer(msg.sender);
        if (treeSize == 0) revert EmptyTree();
        if (root == bytes32(0)) revert ZeroRoot();
        bytes32 existing = rootByTreeSize[treeSize];
        if (existing != bytes32(0)) revert TreeSizeAlreadyAnchored(treeSize, existing);
        rootByTreeSize[treeSize] = root;
        emit RootAnchored(treeSize, root);
    }

    /// The root anchored for `treeSize`, or zero if there is none.
    function rootOf(uint256 treeSize) external view returns (bytes32) {
        return rootByTreeSize[treeSize];
    }

    function addAnchorer(address account) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        if (!isAnchorer[account]) {
            isAnchorer[account] = true;
            emit AnchorerAdded(account);
        }
    }

    function removeAnchorer(address account) external onlyOwner {
        if (isAnchorer[account]) {
            isAnchorer[account] = false;
            emit AnchorerRemoved(account);
        }
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
